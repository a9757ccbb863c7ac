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
# a start-and-stop with no requests, divided by the replies the load tool
# counted. The ceiling (examples/minimal_loop.rs, the row compare.sh judges
# camloop against) is counted the same way.
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

# rtsp_off BINARY: `--rtsp off` for a build that has an RTSP port (the
# baseline may be older), so that it does not bind 8554 during the run.
rtsp_off() { if "$1" serve --help | grep -q -- '--rtsp '; then echo --rtsp off; fi; }

# run SERVER PIPELINE SECONDS -> "instructions requests": SERVER is a
# camloop binary or `ceiling`; requests are the replies the load tool counted.
run() {
    local server=$1 pipeline=$2 secs=$3 out="$WORK/run.$RANDOM" requests=0 command greeting
    if [[ $server == ceiling ]]; then
        command=("$MINIMAL_LOOP" 127.0.0.1:0) greeting=bytes:7
    else
        command=("$server" serve --listen 127.0.0.1:0 --http off $(rtsp_off "$server") --camera none --framing line)
        greeting=line
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out.cg" "${command[@]}" >"$out.stdout" 2>"$out.stderr" &
    local pid=$! line=""
    for _ in $(seq 150); do line=$(head -1 "$out.stdout" 2>/dev/null || true); [[ -n $line ]] && break; sleep 0.2; done
    # `listening control=ADDR ...` (camloop) or `listening ADDR` (the ceiling)
    local addr; addr=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$line" | head -1)
    if [[ $secs != 0 ]]; then
        "$CAMLOOP" load "$addr" --conns 50 --pipeline "$pipeline" --greeting "$greeting" --request 'ping\n' \
            --warmup 0 --duration "$secs" --json >"$out.json"
        requests=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['requests'])" "$out.json")
    fi
    kill -TERM "$pid"; wait "$pid" || true
    echo "$(grep -E '^(summary|totals):' "$out.cg" | head -1 | awk '{print $2}') $requests"
}

per_request() { # SERVER PIPELINE -> instructions per request, start-up subtracted
    read -r idle _ < <(run "$1" "$2" 0)
    read -r total requests < <(run "$1" "$2" "$DURATION_S")
    python3 -c "print(f'{($total - $idle) / $requests:.0f}')"
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
