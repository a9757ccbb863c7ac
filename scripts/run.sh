#!/usr/bin/env bash
# Installs what is missing, builds camloop in release mode and runs the
# server. Extra arguments go to `camloop serve`, e.g. `--camera synthetic`.
# With no camera attached, `--camera auto` (the default) falls back to the
# synthetic test pattern with one warning.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
features=()
[ "${CAMLOOP_NO_OPENCV:-0}" = 1 ] && features=(--no-default-features)
cargo build --release "${features[@]}"
exec "${CARGO_TARGET_DIR:-target}/release/camloop" serve "$@"
