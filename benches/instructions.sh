#!/usr/bin/env bash
# benches/instructions.sh: instructions per request, counted by valgrind's
# callgrind, for camloop and a baseline build side by side. Instruction
# counts do not depend on what else the machine is doing, so on a shared
# machine they show a change in per-request work that CPU time hides in
# noise (they leave out the kernel's side: syscalls are counted apart, by
# `strace -c`, if needed).
#
#     benches/instructions.sh [BASELINE_BINARY]
#
# Each server runs under callgrind with `--camera none --framing line`;
# `camloop load` pings it with 50 connections for DURATION_S seconds at
# pipeline depth 1 and 16; the server's total instructions minus those of
# a start-and-stop with no requests, divided by the requests it served.
# The ceiling (examples/minimal_loop.rs, the row compare.sh judges camloop
# against) is counted the same way, its requests from the load tool's report.
# Loopback only; everything started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S=${DURATION_S:-4}
BASELINE=${1:-${CAMLOOP_BASELINE:-}}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --no-default-features -q --bin camloop --example minimal_loop
CAMLOOP=$TARGET_DIR/release/camloop
MINIMAL_LOOP=$TARGET_DIR/release/examples/minimal_loop
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run BINARY PIPELINE SECONDS -> "instructions requests"
run() {
    local bin=$1 pipeline=$2 secs=$3 out="$WORK/run.$RANDOM"
    valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$bin" serve --listen 127.0.0.1:0 \
        --http off --camera none --framing line >"$out.stdout" 2>"$out.stderr" &
    local pid=$! line=""
    for _ in $(seq 150); do line=$(head -1 "$out.stdout" 2>/dev/null || true); [[ -n $line ]] && break; sleep 0.2; done
    local addr=${line#*control=}; addr=${addr%% *}
    if [[ $secs != 0 ]]; then
        "$CAMLOOP" load "$addr" --conns 50 --pipeline "$pipeline" --greeting line --request 'ping\n' \
            --warmup 0 --duration "$secs" --json >/dev/null
    fi
    local requests; requests=$("$CAMLOOP" ctl "$addr" stats | tr ' ' '\n' | grep '^requests=' | cut -d= -f2)
    kill -TERM "$pid"; wait "$pid" || true
    echo "$(grep -E '^(summary|totals):' "$out.cg" | head -1 | awk '{print $2}') $requests"
}

# run_ceiling PIPELINE SECONDS -> "instructions requests" for the minimal loop
run_ceiling() {
    local pipeline=$1 secs=$2 out="$WORK/run.$RANDOM" requests=1
    valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$MINIMAL_LOOP" 127.0.0.1:0 \
        >"$out.stdout" 2>"$out.stderr" &
    local pid=$! line=""
    for _ in $(seq 150); do line=$(head -1 "$out.stdout" 2>/dev/null || true); [[ -n $line ]] && break; sleep 0.2; done
    local addr=${line#listening }
    if [[ $secs != 0 ]]; then
        "$CAMLOOP" load "$addr" --conns 50 --pipeline "$pipeline" --greeting bytes:7 --request 'ping\n' \
            --warmup 0 --duration "$secs" --json >"$out.json"
        requests=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['requests'] + 1)" "$out.json")
    fi
    kill -TERM "$pid"; wait "$pid" || true
    echo "$(grep -E '^(summary|totals):' "$out.cg" | head -1 | awk '{print $2}') $requests"
}

per_request() { # binary|ceiling pipeline -> instructions per request, startup subtracted
    local runner=(run "$1")
    [[ $1 == ceiling ]] && runner=(run_ceiling)
    read -r idle _ < <("${runner[@]}" "$2" 0)
    read -r total requests < <("${runner[@]}" "$2" "$DURATION_S")
    python3 -c "print(f'{($total - $idle) / ($requests - 1):.0f}')"
}

echo "command: \`benches/instructions.sh${BASELINE:+ BASELINE}\` (DURATION_S=$DURATION_S), $(date -u +%F)"
echo
echo "| build | instructions per \`ping\`, P1 | instructions per \`ping\`, P16 |"
echo "|---|---:|---:|"
echo "| this build ($(git rev-parse --short HEAD)) | $(per_request "$CAMLOOP" 1) | $(per_request "$CAMLOOP" 16) |"
echo "| the ceiling (examples/minimal_loop.rs) | $(per_request ceiling 1) | $(per_request ceiling 16) |"
if [[ -n $BASELINE ]]; then
    echo "| baseline ($("$BASELINE" --version | head -1)) | $(per_request "$BASELINE" 1) | $(per_request "$BASELINE" 16) |"
fi
