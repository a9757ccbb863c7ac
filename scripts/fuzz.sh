#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (not a CI gate) and records the
# run in benches/results/fuzz.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 s each, every target
#
# Targets: control_parser (the control-port decoder and request parser),
# http_request (HTTP request reader and route table, Basic auth included),
# mjpeg_splitter (the MJPEG splitter of exec:/http:// cameras and viewers),
# annexb_splitter (the H.264 Annex-B splitter of H.264 push cameras),
# rtsp_request (the RTSP reader of requests and interleaved frames, and the
# URL and Transport parsers), webrtc_signalling (WebRTC signalling: the
# camera-streamer and OctoPrint JSON, SDP offers, WHEP trickle-ICE
# fragments, paths and If-Match).
# What each harness checks is in fuzz/harness.rs.
#
# Installs what is missing first (build tools and Rust through
# scripts/setup.sh, then cargo-fuzz). cargo-fuzz needs nightly-only flags
# (sanitizers); on a stable toolchain RUSTC_BOOTSTRAP=1 allows them.
# New inputs libFuzzer finds go to fuzz/scratch/<target>/ (ignored by git);
# the seeds in fuzz/corpus/<target>/ are only read, and fuzz/dict/<target>.dict
# gives libFuzzer the protocol's words. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script fail: copy the input into
# fuzz/corpus/<target>/ once it is fixed, and `cargo test --test
# fuzz_corpus` replays it from then on.
#
# Appends one section to benches/results/fuzz.md (FUZZ_RESULTS=FILE writes
# elsewhere): the command, date, commit, and per target libFuzzer's final
# stats (executions, exec/s, new units), the corpus size (files in
# scratch + corpus) and the crashes (files new in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(control_parser http_request mjpeg_splitter annexb_splitter rtsp_request webrtc_signalling)
command_line="scripts/fuzz.sh${*:+ $*}"
seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]   targets: ${all_targets[*]}" >&2
    exit 2
fi
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${all_targets[@]}")
fi
for target in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
        echo "fuzz: no target $target (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done
results=${FUZZ_RESULTS:-benches/results/fuzz.md}

# The fuzz build needs no OpenCV: only a C++ compiler (libFuzzer) and Rust.
CAMLOOP_NO_OPENCV=1 scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# Build every target first, so the build is not part of any target's time.
echo "== fuzz: building ${targets[*]}" >&2
for target in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir fuzz "$target" >&2
done

logs=$(mktemp -d -t camloop-fuzz.XXXXXX)
trap 'rm -rf "$logs"' EXIT
files_in() { find "$@" -type f 2>/dev/null | wc -l; }
stat_of() { sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -n1; }

rows=()
failed=()
for target in "${targets[@]}"; do
    scratch=fuzz/scratch/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$scratch"
    find "$artifacts" -type f 2>/dev/null | sort >"$logs/$target.before" || true
    dict=()
    [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="$PWD/fuzz/dict/$target.dict")
    echo "== fuzz $target for ${seconds}s" >&2
    # -max_total_time bounds the run; -rss_limit_mb bounds a runaway input;
    # -timeout makes an input that takes 10 s (a parser that loops) a crash.
    set +e
    cargo fuzz run --fuzz-dir fuzz "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "${dict[@]}" 2>&1 | tee "$logs/$target.log" >&2
    status=${PIPESTATUS[0]}
    set -e
    find "$artifacts" -type f 2>/dev/null | sort >"$logs/$target.after" || true
    crashes=$(comm -13 "$logs/$target.before" "$logs/$target.after" | wc -l)
    executions=$(stat_of number_of_executed_units "$logs/$target.log")
    per_second=$(stat_of average_exec_per_sec "$logs/$target.log")
    new_units=$(stat_of new_units_added "$logs/$target.log")
    corpus=$(files_in "$scratch" "fuzz/corpus/$target")
    result=ok
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        result="FAILED (exit $status)"
        failed+=("$target")
    fi
    new_files=$(comm -13 "$logs/$target.before" "$logs/$target.after" | sed 's/^/`/; s/$/`/' | paste -sd' ' -)
    rows+=("| $target | ${executions:--} | ${per_second:--} | ${new_units:--} | $corpus | $crashes${new_files:+ ($new_files)} | $result |")
done

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- src fuzz 2>/dev/null || commit+=" with uncommitted changes in src/ or fuzz/"
mkdir -p "$(dirname "$results")"
if [ ! -s "$results" ]; then
    cat >"$results" <<'EOF'
# Fuzzing (scripts/fuzz.sh)

One section per run of `scripts/fuzz.sh`, newest last. Executions, exec/s
and new units are libFuzzer's final stats (`-print_final_stats=1`:
`number_of_executed_units`, `average_exec_per_sec`, `new_units_added`);
corpus is the files in `fuzz/corpus/<target>/` plus `fuzz/scratch/<target>/`
after the run; crashes are the files new in `fuzz/artifacts/<target>/`
(crashes, leaks, timeouts, out-of-memory inputs). The harnesses and what
they check: `fuzz/harness.rs`.
EOF
fi
{
    echo
    echo "## $(date -u +%Y-%m-%dT%H:%MZ): \`$command_line\`"
    echo
    echo "Commit \`$commit\`, $(nproc) cores, $(uname -sr), $(rustc --version | cut -d' ' -f1-2);" \
        "${seconds} s per target (\`-max_total_time\`), sanitizer: cargo-fuzz's default (address)."
    echo
    echo "| target | executions | exec/s | new units | corpus files | crashes | result |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >>"$results"
echo "fuzz: results appended to $results" >&2

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no crash in ${seconds}s each" >&2
