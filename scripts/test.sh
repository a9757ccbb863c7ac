#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: unit, property and
# integration tests (real loopback sockets, real OpenCV, headless chromium),
# benches compiled and run once as tests, with and without the OpenCV feature.
# Ends with one summary line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --all-targets builds the examples as test harnesses; tests/examples.rs runs
# the real example binaries, so build those first.
echo "== tests with the default features (OpenCV)" >&2
cargo build --examples
cargo test --all-targets 2>&1 | tee -a "$log"
# The same protocol and endpoint suites, unmodified, against servers that
# also serve a second camera: clients of the default one must see no change.
echo "== protocol and endpoint tests again, with a second camera" >&2
CAMLOOP_TEST_EXTRA_CAMERA=synthetic cargo test --test control_protocol --test http_endpoints 2>&1 | tee -a "$log"
echo "== tests without OpenCV (synthetic camera, pure-Rust JPEG)" >&2
cargo build --examples --no-default-features
cargo test --all-targets --no-default-features 2>&1 | tee -a "$log"
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
