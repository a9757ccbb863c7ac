#!/usr/bin/env bash
# benches/camera_impact.sh: what the camera costs the event loop (issue 5).
#
# For each camera (none, synthetic, a 640x480 MJPEG clip through OpenCV)
# runs camloop at 30 fps, with no consumer (the clip is then only grabbed,
# at --idle-fps 30) or with one MJPEG viewer (every frame grabbed,
# retrieved and encoded), and measures, in the same run:
#   - the `ping` round-trip p50/p99 of 50 clients (`camloop load`),
#   - the grab and retrieve+encode times the server itself reports,
#   - the server's CPU %.
# The goal: the ping p99 with a camera rises by no more than the grab p99.
# Loopback only; everything started is stopped on exit. About 1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S=${DURATION_S:-8}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release -q
CAMLOOP=${CARGO_TARGET_DIR:-target}/release/camloop
ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=640x480:rate=30 -t 10 -c:v mjpeg -q:v 5 "$WORK/clip.avi"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # name viewers(0|1) camera-args...
    local name=$1 viewers=$2; shift 2
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --snapshot-dir "$WORK" \
        --fps 30 --idle-fps 30 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!; PIDS+=("$pid")
    local line=""
    for _ in $(seq 50); do line=$(head -1 "$WORK/$name.out" 2>/dev/null || true); [[ -n $line ]] && break; sleep 0.1; done
    local control=${line#*control=}; control=${control%% *}
    local http=${line#*http=}
    local viewer=""
    if ((viewers)); then
        curl -s -o /dev/null "http://$http/stream.mjpg" &
        viewer=$!; PIDS+=("$viewer")
    fi
    sleep 1
    local before; before=$(cpu_ticks "$pid")
    "$CAMLOOP" load "$control" --conns 50 --pipeline 1 --warmup 1 --duration "$DURATION_S" \
        --request 'ping\r\n' --greeting bytes:7 --json >"$WORK/$name.json"
    local after; after=$(cpu_ticks "$pid")
    local stats; stats=$("$CAMLOOP" ctl "$control" stats | grep '^OK')
    kill $viewer "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    python3 - "$name" "$WORK/$name.json" "$stats" "$((after - before))" "$(getconf CLK_TCK)" "$((DURATION_S + 1))" <<'PY'
import json, sys
name, path, stats, ticks, hz, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
r = json.load(open(path))
s = dict(kv.split("=", 1) for kv in stats.split()[1:])
print(f"| {name} | {r['requests_per_s']:.0f} | {r['latency_p50_us']} | {r['latency_p99_us']} | "
      f"{s['grab_us_p50']} | {s['grab_us_p99']} | {s['encode_us_p99']} | {int(s['fps_x100'])/100:.1f} | "
      f"{100.0 * ticks / hz / secs:.0f} % |")
PY
}

echo "command: \`benches/camera_impact.sh\` (DURATION_S=$DURATION_S)  "
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo
echo "| camera (30 fps) | ping req/s (50 conns) | ping p50 µs | ping p99 µs | grab p50 µs | grab p99 µs | retrieve+encode p99 µs | measured fps | server CPU |"
echo "|---|---|---|---|---|---|---|---|---|"
measure "none" 0 --camera none
measure "synthetic, 1 viewer (grab + render + encode)" 1 --camera synthetic
measure "clip 640x480 via OpenCV, no viewer (grabs only)" 0 --camera "$WORK/clip.avi"
measure "clip 640x480 via OpenCV, 1 viewer (grab + retrieve + encode)" 1 --camera "$WORK/clip.avi"
