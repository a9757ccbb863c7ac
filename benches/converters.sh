#!/usr/bin/env bash
# benches/converters.sh: what a converter child costs and saves (issue 27):
# each converter's CPU at 1280x720 and 640x480, the capture latency of an
# H.264 camera with the decoder warm and cold (p50/p99), and the decoder's
# cost while nobody watches against an always-on transcoder's. The method
# is in benches/converters.py's docstring.
#
#   benches/converters.sh > benches/results/converters.md
#
# Environment: DURATION_S (10), WARMUP_S (3), CAPTURES (20), CAMLOOP (a
# binary to use instead of building one). Needs ffmpeg (libx264), curl and
# python3 (scripts/setup.sh test). About 3 minutes. Only 127.0.0.1 is
# contacted; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${CAMLOOP:-} ]]; then
    cargo build --release --no-default-features -q --bin camloop
    CAMLOOP=${CARGO_TARGET_DIR:-target}/release/camloop
fi
echo "camloop: $CAMLOOP ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo
exec python3 benches/converters.py "$CAMLOOP"
