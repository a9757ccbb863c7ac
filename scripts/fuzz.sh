#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (not a CI gate).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 s each, every target
#
# Installs cargo-fuzz if it is missing. cargo-fuzz needs nightly-only flags
# (sanitizers); on a stable toolchain RUSTC_BOOTSTRAP=1 allows them.
# New inputs libFuzzer finds go to fuzz/scratch/<target>/ (ignored by git);
# the seeds in fuzz/corpus/<target>/ are only read. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes this script fail: copy the input
# into fuzz/corpus/<target>/ once it is fixed, and `cargo test --test
# fuzz_corpus` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(control_parser http_request mjpeg_splitter)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

failed=()
for target in "${targets[@]}"; do
    scratch=fuzz/scratch/$target
    mkdir -p "$scratch"
    echo "== fuzz $target for ${seconds}s" >&2
    # -max_total_time bounds the run; -rss_limit_mb bounds a runaway input.
    if ! cargo fuzz run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no crash in ${seconds}s each" >&2
