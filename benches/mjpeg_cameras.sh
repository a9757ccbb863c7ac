#!/usr/bin/env bash
# benches/mjpeg_cameras.sh: several cameras in one loop (issue 19).
#
#   benches/mjpeg_cameras.sh > benches/results/mjpeg_cameras.md
#
# For each count in CAMERA_COUNTS (default "1 2 4") it starts one
# `camloop serve` with that many synthetic cameras (640x480, 30 fps; the
# synthetic camera is rendered and encoded on the loop, the most a camera
# can cost it) and VIEWERS (25) viewers per camera, one `camloop load
# --mjpeg /cam/NAME/stream.mjpg --viewers 25` process per camera, all at
# once. Per camera count:
#
# - fps per viewer of each camera (mean, min over its viewers), from each
#   `camloop load --json`;
# - server CPU % over the measured window (user + system from
#   /proc/PID/stat, read at the window's start and end; 100 = one core) and
#   the clients' CPU % (their own reports, summed);
# - encodes/s of each camera: the delta of `frames_encoded` in `stats NAME`
#   over the window;
# - `loop_stall_us_p99` and `loop_stall_us_max` from `stats` at the end
#   (since the server started, so warm-up included).
#
# Environment: CAMERA_COUNTS ("1 2 4"), VIEWERS (25), DURATION_S (10),
# WARMUP_S (2), FPS (30), CAMLOOP (a binary instead of building one). A
# smoke run that only checks the script:
#
#   CAMERA_COUNTS="1 2" VIEWERS=2 DURATION_S=1 WARMUP_S=0.5 benches/mjpeg_cameras.sh
#
# Only 127.0.0.1 is contacted; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CAMERA_COUNTS=${CAMERA_COUNTS:-"1 2 4"}
VIEWERS=${VIEWERS:-25}
DURATION_S=${DURATION_S:-10}
WARMUP_S=${WARMUP_S:-2}
FPS=${FPS:-30}
WIDTH=640
HEIGHT=480

TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/camloop-cameras.XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "mjpeg_cameras: $*" >&2; }
. benches/proc.sh  # cpu_ticks, json_field, listening_ports

if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi
TICKS_PER_S=$(getconf CLK_TCK)

# stat KEY LINE: the value of KEY in a stats line, or nothing.
stat() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
stats_of() { "$CAMLOOP" ctl "127.0.0.1:$1" "stats $2" 2>>"$WORK/ctl.err" | grep '^OK' || true; }

ROWS=()
# measure COUNT: one server with COUNT cameras and VIEWERS viewers on each.
measure() {
    local count=$1 out="$WORK/server-$count.out" ctl_port="" http_port="" index
    local cameras=()
    for index in $(seq 0 $((count - 1))); do cameras+=(--camera "cam$index=synthetic"); done
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off "${cameras[@]}" \
        --fps "$FPS" --width "$WIDTH" --height "$HEIGHT" --snapshot-dir "$WORK/snapshots" \
        >"$out" 2>"$WORK/server-$count.log" &
    SERVER_PID=$!
    read -r ctl_port http_port < <(listening_ports "$out") || true
    if [[ -z $ctl_port || -z $http_port ]]; then
        log "the server with $count cameras did not start: $(head -c 300 "$WORK/server-$count.log")"
        exit 1
    fi
    log "$count camera(s) x $VIEWERS viewers, ${WARMUP_S} s warmup + ${DURATION_S} s"
    local clients=()
    for index in $(seq 0 $((count - 1))); do
        timeout "$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print int(w + d + 60) }')" \
            "$CAMLOOP" load --mjpeg "http://127.0.0.1:$http_port/cam/cam$index/stream.mjpg" \
            --viewers "$VIEWERS" --warmup "$WARMUP_S" --duration "$DURATION_S" --json \
            >"$WORK/load-$count-$index.json" 2>"$WORK/load-$count-$index.err" &
        clients+=($!)
    done
    sleep "$WARMUP_S"
    local ticks_before encoded_before=()
    ticks_before=$(cpu_ticks "$SERVER_PID")
    for index in $(seq 0 $((count - 1))); do
        encoded_before+=("$(stat frames_encoded "$(stats_of "$ctl_port" "cam$index")")")
    done
    sleep "$DURATION_S"
    local ticks_after
    ticks_after=$(cpu_ticks "$SERVER_PID")
    local fps_cells="" min_cells="" encode_cells="" client_cpu=0
    for index in $(seq 0 $((count - 1))); do
        local after
        after=$(stat frames_encoded "$(stats_of "$ctl_port" "cam$index")")
        encode_cells+="$(awk -v a="${encoded_before[$index]}" -v b="$after" -v d="$DURATION_S" \
            'BEGIN { printf "%.1f", (b - a) / d }') "
    done
    for index in $(seq 0 $((count - 1))); do
        wait "${clients[$index]}" || log "camloop load for cam$index failed: $(head -c 300 "$WORK/load-$count-$index.err")"
        local f="$WORK/load-$count-$index.json"
        fps_cells+="$(json_field fps_per_viewer_mean "$f") "
        min_cells+="$(json_field fps_per_viewer_min "$f") "
        client_cpu=$(awk -v a="$client_cpu" -v b="$(json_field tool_cpu_percent "$f")" 'BEGIN { print a + b }')
    done
    local server_cpu stats_end
    server_cpu=$(awk -v a="$ticks_before" -v b="$ticks_after" -v t="$TICKS_PER_S" -v d="$DURATION_S" \
        'BEGIN { printf "%.1f", 100 * (b - a) / t / d }')
    stats_end=$("$CAMLOOP" ctl "127.0.0.1:$ctl_port" stats | grep '^OK' || true)
    ROWS+=("| $count | $VIEWERS | ${fps_cells% } | ${min_cells% } | $server_cpu | $client_cpu | ${encode_cells% } | $(stat loop_stall_us_p99 "$stats_end") | $(stat loop_stall_us_max "$stats_end") |")
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

for count in $CAMERA_COUNTS; do
    measure "$count"
done

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cat <<EOF
# Several cameras in one loop: $(echo "$CAMERA_COUNTS" | sed 's/ /, /g') cameras x $VIEWERS viewers each

- command: \`CAMERA_COUNTS="$CAMERA_COUNTS" VIEWERS=$VIEWERS DURATION_S=$DURATION_S WARMUP_S=$WARMUP_S benches/mjpeg_cameras.sh\`
- server: \`camloop serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --camera cam0=synthetic [--camera cam1=synthetic …] --fps $FPS --width $WIDTH --height $HEIGHT\`, release build without default features; a new server per camera count
- viewers: one \`camloop load --mjpeg http://127.0.0.1:PORT/cam/camN/stream.mjpg --viewers $VIEWERS --warmup $WARMUP_S --duration $DURATION_S --json\` per camera, all at once, on the same machine
- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
- date: $(date -u '+%Y-%m-%d %H:%M UTC'), camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?')

Per-camera columns list cam0, cam1, … in order. CPU % is over the measured window (100 = one core); the clients' CPU is their own reports, summed. \`loop_stall_us_*\` are since the server started.

| cameras | viewers per camera | fps per viewer, mean (per camera) | fps per viewer, min (per camera) | server CPU % | clients CPU % | encodes/s (per camera) | loop_stall_us_p99 | loop_stall_us_max |
|---:|---:|---|---|---:|---:|---|---:|---:|
EOF
printf '%s\n' "${ROWS[@]}"
