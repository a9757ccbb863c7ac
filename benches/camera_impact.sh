#!/usr/bin/env bash
# benches/camera_impact.sh: what the camera costs the event loop.
#
# For each camera (none, synthetic, a 640x480 MJPEG clip through OpenCV,
# the same clip replayed by an ffmpeg child through `exec:` with `-c copy`,
# `http://` from another camloop, from a camera that accepts and never
# answers and from one that streams for a second and then stalls)
# runs camloop at 30 fps, with no consumer (a timed clip is then only
# grabbed, at --idle-fps 30) or with one MJPEG viewer, and for `exec:` also
# with the child SIGSTOPped for the whole measurement; and measures, in the
# same run:
#   - `ping` req/s and round-trip p50/p99/max of 50 clients (`camloop load`),
#   - the grab and retrieve+encode times and the loop's own longest stall
#     (`loop_stall_us_max`) that the server reports,
#   - the server's CPU % of one core (the ffmpeg child's is not counted).
# Goals: the ping p99 with a timed camera rises by no more than the grab
# p99; with the exec child stopped, ping max <= the no-camera max + 20 ms
# and req/s >= 0.9x the no-camera row (the same for the silent and stalling
# http:// cameras); exec passthrough at 30 fps costs
# camloop <= 3 % of a core (the row with no viewer and no ping load).
# Loopback only; everything started is stopped on exit. About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S=${DURATION_S:-8}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
. benches/proc.sh  # cpu_ticks, rss_kib, open_fds, fd_limit, json_field, free_port

# CAMLOOP=path/to/camloop skips the build (a smoke run with a debug binary).
if [[ -z ${CAMLOOP:-} ]]; then
    cargo build --release -q
    CAMLOOP=${CARGO_TARGET_DIR:-target}/release/camloop
fi
ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=640x480:rate=30 -t 10 -c:v mjpeg -q:v 5 "$WORK/clip.avi"

ffmpeg -loglevel error -y -i "$WORK/clip.avi" -c copy -f mjpeg "$WORK/clip.mjpeg"
EXEC="exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $WORK/clip.mjpeg -c copy -f mjpeg -"

# Network cameras for the http:// rows: an upstream camloop (healthy), and
# a small python3 server that accepts and never answers (silent) or streams
# one second of MJPEG per connection and then stops (stalling).
ffmpeg -loglevel error -y -i "$WORK/clip.avi" -frames:v 1 -f mjpeg "$WORK/frame.jpg"
cat >"$WORK/fake_camera.py" <<'PY'
import socket, sys, threading, time
mode, jpeg = sys.argv[1], open(sys.argv[2], "rb").read()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)
held = []
def serve(conn):
    held.append(conn)
    if mode == "silent":
        return
    try:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")
        for _ in range(30):
            conn.sendall(b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
            time.sleep(1 / 30)
    except OSError:
        pass  # camloop gave up on this connection
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
fake_camera() { # mode: starts it (not in a subshell, so cleanup knows it); the port goes to $WORK/fake-MODE.port
    python3 "$WORK/fake_camera.py" "$1" "$WORK/frame.jpg" >"$WORK/fake-$1.port" &
    PIDS+=("$!")
    for _ in $(seq 50); do [[ -s $WORK/fake-$1.port ]] && break; sleep 0.1; done
}
"$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --snapshot-dir "$WORK" --camera synthetic \
    --fps 30 >"$WORK/upstream.out" 2>"$WORK/upstream.err" &
PIDS+=("$!")
for _ in $(seq 50); do [[ -s $WORK/upstream.out ]] && break; sleep 0.1; done
UPSTREAM=$(head -1 "$WORK/upstream.out"); UPSTREAM=${UPSTREAM#*http=}; UPSTREAM=${UPSTREAM%% *}
fake_camera silent; SILENT_PORT=$(cat "$WORK/fake-silent.port")
fake_camera stalling; STALLING_PORT=$(cat "$WORK/fake-stalling.port")

# The camera child of server $1 (ffmpeg), for the stopped-child row.
# (`|| true`: with pipefail the loop's last non-matching test would fail the row.)
camera_child() { for p in /proc/[0-9]*; do [[ $(awk '{print $4}' "$p/stat" 2>/dev/null) == "$1" ]] && basename "$p"; done | head -1 || true; }

idle_cpu() { # name camera-args...: server CPU with the camera running and no client at all
    local name=$1; shift
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http off --rtsp off --snapshot-dir "$WORK" --fps 30 "$@" \
        >"$WORK/idle.out" 2>"$WORK/idle.err" &
    local pid=$!; PIDS+=("$pid")
    sleep 2
    local before; before=$(cpu_ticks "$pid")
    sleep "$DURATION_S"
    local after; after=$(cpu_ticks "$pid")
    local line; line=$(head -1 "$WORK/idle.out"); local control=${line#*control=}; control=${control%% *}
    local grabbed; grabbed=$("$CAMLOOP" ctl "$control" stats | tr ' ' '\n' | grep '^frames_grabbed=' | cut -d= -f2)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "| $name | $(python3 -c "print(f'{100.0 * $((after - before)) / $(getconf CLK_TCK) / $DURATION_S:.1f} %')") | $grabbed frames in $((DURATION_S + 2)) s |"
}

measure() { # name viewers(0|1|stopped) camera-args...
    local name=$1 viewers=$2; shift 2
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --snapshot-dir "$WORK" \
        --fps 30 --idle-fps 30 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    local pid=$!; PIDS+=("$pid")
    local line=""
    for _ in $(seq 50); do line=$(head -1 "$WORK/$name.out" 2>/dev/null || true); [[ -n $line ]] && break; sleep 0.1; done
    local control=${line#*control=}; control=${control%% *}
    local http=${line#*http=}; http=${http%% *}
    local viewer="" stopped=""
    if [[ $viewers == 1 ]]; then
        curl -s -o /dev/null "http://$http/stream.mjpg" &
        viewer=$!; PIDS+=("$viewer")
    fi
    sleep 1
    if [[ $viewers == stopped ]]; then
        stopped=$(camera_child "$pid")
        kill -STOP "$stopped"
    fi
    local before; before=$(cpu_ticks "$pid")
    "$CAMLOOP" load "$control" --conns 50 --pipeline 1 --warmup 1 --duration "$DURATION_S" \
        --request 'ping\r\n' --greeting bytes:7 --json >"$WORK/$name.json"
    local after; after=$(cpu_ticks "$pid")
    local stats; stats=$("$CAMLOOP" ctl "$control" stats | grep '^OK')
    [[ -n $stopped ]] && kill -CONT "$stopped"
    kill $viewer "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    python3 - "$name" "$WORK/$name.json" "$stats" "$((after - before))" "$(getconf CLK_TCK)" "$((DURATION_S + 1))" <<'PY'
import json, sys
name, path, stats, ticks, hz, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
r = json.load(open(path))
s = dict(kv.split("=", 1) for kv in stats.split()[1:])
print(f"| {name} | {r['requests_per_s']:.0f} | {r['latency_p50_us']} | {r['latency_p99_us']} | "
      f"{r['latency_max_us']} | {s['grab_us_p50']} | {s['grab_us_p99']} | {s['encode_us_p99']} | "
      f"{s['loop_stall_us_max']} | {int(s['fps_x100'])/100:.1f} | {s['camera_restarts']} | "
      f"{100.0 * ticks / hz / secs:.0f} % |")
PY
}

echo "command: \`benches/camera_impact.sh\` (DURATION_S=$DURATION_S)  "
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo
echo "| camera (30 fps) | ping req/s (50 conns) | ping p50 µs | ping p99 µs | ping max µs | grab p50 µs | grab p99 µs | retrieve+encode p99 µs | loop_stall_us_max | measured fps | restarts | server CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
measure "none" 0 --camera none
measure "synthetic, 1 viewer (grab + render + encode)" 1 --camera synthetic
measure "clip 640x480 via OpenCV, no viewer (grabs only)" 0 --camera "$WORK/clip.avi"
measure "clip 640x480 via OpenCV, 1 viewer (grab + retrieve + encode)" 1 --camera "$WORK/clip.avi"
measure "exec: ffmpeg -c copy, no viewer" 0 --camera "$EXEC" --camera-timeout 60
measure "exec: ffmpeg -c copy, 1 viewer" 1 --camera "$EXEC" --camera-timeout 60
measure "exec: ffmpeg child SIGSTOPped" stopped --camera "$EXEC" --camera-timeout 60
measure "http: upstream camloop's stream, 1 viewer" 1 --camera "http://$UPSTREAM/stream.mjpg"
measure "http: camera accepts, never answers, 1 viewer" 1 --camera "http://127.0.0.1:$SILENT_PORT/" --camera-timeout 2
measure "http: camera streams 1 s then stalls, 1 viewer" 1 --camera "http://127.0.0.1:$STALLING_PORT/" --camera-timeout 2
echo
echo "| camera, no client at all | server CPU (one core) | frames taken |"
echo "|---|---|---|"
idle_cpu "exec: ffmpeg -c copy passthrough, 30 fps" --camera "$EXEC"
