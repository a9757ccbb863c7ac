#!/usr/bin/env bash
# benches/mjpeg_viewers.sh: MJPEG fan-out at the design's limit (issue 18).
#
#   benches/mjpeg_viewers.sh > benches/results/mjpeg_viewers.md
#
# For each camera (the synthetic one, which camloop renders and encodes on
# its loop, and an `exec:` camera, an ffmpeg child replaying a 640x480 MJPEG
# clip at 30 fps whose frames camloop passes through without encoding) it
# starts one `camloop serve --fps 30 --width 640 --height 480` on 127.0.0.1
# and, in that same server run, measures VIEWER_COUNTS viewers one count
# after the other with `camloop load --mjpeg URL --viewers N` (one
# single-threaded mio loop; parts cut by camloop's own splitter). Per row:
#
# - fps per viewer (mean, min), stalled and dropped viewers, errors, MB/s and
#   the client's frame age p99 (now - X-Timestamp): from `camloop load --json`;
# - server CPU % (user + system from /proc/PID/stat, measured window only:
#   `camloop load --server-pid` reads it when its window starts and ends) and
#   client CPU % (the tool's own, same window), 100 = one core;
# - server RSS (VmRSS) and open descriptors, sampled mid-window;
# - grabs/s (frames the camera delivered), encodes/s and passthrough
#   frames/s: deltas of `frames_grabbed`, `frames_encoded` and
#   `frames_passthrough` from the control port's `stats` around the window;
# - the server's frame send age p99 (`stats` key `frame_send_age_us_p99`;
#   n/a from a server without that key).
#
# After the table, for each camera: the viewer count at which fps per viewer
# first drops below 90 % of FPS, and which resource ran out (descriptors,
# the camera's own rate, the server's CPU, the client's CPU, or both sharing
# the machine's cores).
#
# Environment: VIEWER_COUNTS (default "1 100 1000"), DURATION_S (10),
# WARMUP_S (2), FPS (30), CAMERAS ("synthetic exec"), CAMLOOP (a binary to
# use instead of building one). A smoke run that only checks the script:
#
#   VIEWER_COUNTS="1 10" DURATION_S=1 WARMUP_S=0.5 benches/mjpeg_viewers.sh
#
# 1,000 viewers take 1,000 descriptors in each process: the script raises its
# soft limit to the hard one (the tool also raises its own). Needs ffmpeg for
# the exec: camera (scripts/setup.sh test installs it). Only 127.0.0.1 is
# contacted; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

VIEWER_COUNTS=${VIEWER_COUNTS:-"1 100 1000"}
DURATION_S=${DURATION_S:-10}   # measured seconds per viewer count
WARMUP_S=${WARMUP_S:-2}        # seconds of streaming before each window
FPS=${FPS:-30}
CAMERAS=${CAMERAS:-"synthetic exec"}
WIDTH=640
HEIGHT=480
CLIP_S=10                      # length of the clip the exec: camera loops
DROP_RATIO=0.9                 # fps per viewer below this x FPS: the rate dropped
BUSY_CPU_PERCENT=90            # a process at this much of one core has run out

TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/camloop-viewers.XXXXXX)
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

log() { echo "mjpeg_viewers: $*" >&2; }
. benches/proc.sh  # cpu_ticks, rss_kib, open_fds, fd_limit, json_field, free_port, listening_ports

if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi

CLIP=$WORK/clip.mjpeg
if [[ " $CAMERAS " == *" exec "* ]]; then
    log "encoding a ${CLIP_S} s ${WIDTH}x${HEIGHT} MJPEG clip at $FPS fps"
    ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=${WIDTH}x${HEIGHT}:rate=$FPS" \
        -t "$CLIP_S" -c:v mjpeg -q:v 5 -f mjpeg "$CLIP"
fi
# `-framerate` because a raw MJPEG file has no timing and ffmpeg would read
# it at its default of 25 fps.
EXEC_CAMERA="exec:ffmpeg -nostdin -loglevel error -re -framerate $FPS -stream_loop -1 -i $CLIP -c copy -f mjpeg -"

# stats_line PORT: the `OK key=value ...` line of the control port's `stats`.
stats_line() { "$CAMLOOP" ctl "127.0.0.1:$1" stats 2>>"$WORK/ctl.err" | grep '^OK' || true; }
# stat KEY LINE: the value of KEY in a stats line, or nothing.
stat() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
# per_s BEFORE AFTER: the rate over the window, n/a if a key was missing.
per_s() {
    if [[ -n $1 && -n $2 ]]; then
        awk -v a="$1" -v b="$2" -v d="$DURATION_S" 'BEGIN { printf "%.1f", (b - a) / d }'
    else
        echo n/a
    fi
}

ROWS=()      # markdown rows
VERDICTS=()  # one line per camera

# measure CAMERA_NAME CAMERA_ARG: one server, every viewer count.
measure() {
    local name=$1 camera=$2 out="$WORK/server.out" ctl_port="" http_port=""
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --camera "$camera" \
        --fps "$FPS" --width "$WIDTH" --height "$HEIGHT" --snapshot-dir "$WORK/snapshots" \
        >"$out" 2>"$WORK/server-$name.log" &
    SERVER_PID=$!
    read -r ctl_port http_port < <(listening_ports "$out") || true
    if [[ -z $ctl_port || -z $http_port ]]; then
        log "the $name server did not start: $(head -c 300 "$WORK/server-$name.log")"
        exit 1
    fi
    local url="http://127.0.0.1:$http_port/stream.mjpg" viewers dropped_at="" verdict=""
    for viewers in $VIEWER_COUNTS; do
        log "$name camera: $viewers viewer(s), ${WARMUP_S} s warmup + ${DURATION_S} s"
        local run="$WORK/load-$name-$viewers.json"
        timeout "$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print int(w + d + 60) }')" \
            "$CAMLOOP" load --mjpeg "$url" --viewers "$viewers" --warmup "$WARMUP_S" \
            --duration "$DURATION_S" --server-pid "$SERVER_PID" --json >"$run" 2>"$run.err" &
        local client=$!
        sleep "$WARMUP_S"
        local before after rss fds
        before=$(stats_line "$ctl_port")
        sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
        rss=$(awk -v k="$(rss_kib "$SERVER_PID")" 'BEGIN { printf "%.1f", k / 1024 }')
        fds=$(open_fds "$SERVER_PID")
        sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
        after=$(stats_line "$ctl_port")
        if ! wait "$client"; then
            log "camloop load failed: $(head -c 300 "$run.err")"
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "the $name server died with $viewers viewers"
            exit 1
        fi
        local f=$run
        local mean min stalled dropped errors mbps age_p99 server_cpu client_cpu send_age first_error
        mean=$(json_field fps_per_viewer_mean "$f")
        min=$(json_field fps_per_viewer_min "$f")
        stalled=$(json_field stalled_viewers "$f")
        dropped=$(json_field dropped_viewers "$f")
        errors=$(json_field errors "$f")
        mbps=$(awk -v b="$(json_field bytes_per_s "$f")" 'BEGIN { printf "%.1f", b / 1e6 }')
        age_p99=$(json_field frame_age_p99_us "$f")
        [[ $age_p99 == null || -z $age_p99 ]] && age_p99=n/a
        server_cpu=$(json_field server_cpu_percent "$f")
        client_cpu=$(json_field tool_cpu_percent "$f")
        first_error=$(json_field first_error "$f")
        send_age=$(stat frame_send_age_us_p99 "$after")
        local grabs
        grabs=$(per_s "$(stat frames_grabbed "$before")" "$(stat frames_grabbed "$after")")
        ROWS+=("| $name | $viewers | ${mean:-?} | ${min:-?} | ${stalled:-?} | ${dropped:-?} | ${errors:-?} | $mbps | ${server_cpu:-?} | ${client_cpu:-?} | $rss | $fds / $(fd_limit "$SERVER_PID") | $grabs | $(per_s "$(stat frames_encoded "$before")" "$(stat frames_encoded "$after")") | $(per_s "$(stat frames_passthrough "$before")" "$(stat frames_passthrough "$after")") | $age_p99 | ${send_age:-n/a} |")
        # The first count at which the rate drops, and what ran out there.
        if [[ -z $dropped_at ]] && awk -v m="${mean:-0}" -v f="$FPS" -v r="$DROP_RATIO" \
            'BEGIN { exit !(m < f * r) }'; then
            dropped_at=$viewers
            verdict=$(awk -v s="${server_cpu:-0}" -v c="${client_cpu:-0}" -v busy="$BUSY_CPU_PERCENT" \
                -v cores="$(nproc)" -v e="$first_error" -v g="$grabs" -v f="$FPS" -v r="$DROP_RATIO" 'BEGIN {
                    # A camera the loop runs (the synthetic one renders on it)
                    # slows down with a saturated loop: CPU is named first then.
                    slow = (g != "n/a" && g < f * r) ? "; the camera, run by the loop, delivered " g " frames/s" : ""
                    if (e ~ /[Tt]oo many open files/) print "descriptors (" e ")"
                    else if (s >= busy && c >= busy) print "CPU of both server and client" slow
                    else if (s >= busy) print "server CPU" slow
                    else if (slow != "") print "the camera itself: it delivered " g " frames/s"
                    else if (c >= busy) print "client CPU"
                    else if (s + c >= busy * cores) print "the machine'"'"'s cores (server + client)"
                    else print "none of server CPU, client CPU or descriptors (look at stalls and errors)"
                }')
        fi
        sleep 1 # let the server notice the closed viewers
    done
    if [[ -n $dropped_at ]]; then
        VERDICTS+=("- $name camera: fps per viewer first drops below ${DROP_RATIO} x $FPS at **$dropped_at viewers**; ran out: $verdict")
    else
        VERDICTS+=("- $name camera: $FPS fps per viewer (at least ${DROP_RATIO} x) held at every count measured ($VIEWER_COUNTS)")
    fi
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

for name in $CAMERAS; do
    case $name in
        synthetic) measure synthetic synthetic ;;
        exec) measure exec "$EXEC_CAMERA" ;;
        *) log "unknown camera $name (synthetic or exec)"; exit 1 ;;
    esac
done

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cat <<EOF
# MJPEG fan-out: $(echo "$VIEWER_COUNTS" | sed 's/ /, /g') viewers at ${WIDTH}x${HEIGHT}, $FPS fps

- command: \`VIEWER_COUNTS="$VIEWER_COUNTS" DURATION_S=$DURATION_S WARMUP_S=$WARMUP_S benches/mjpeg_viewers.sh\`
- server: \`camloop serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --camera CAMERA --fps $FPS --width $WIDTH --height $HEIGHT\`, release build without default features; one server run per camera, every viewer count in it
- cameras: \`synthetic\` (rendered and encoded on the loop); \`exec\`: \`$EXEC_CAMERA\` with CLIP from \`ffmpeg -f lavfi -i testsrc2=size=${WIDTH}x${HEIGHT}:rate=$FPS -t $CLIP_S -c:v mjpeg -q:v 5 -f mjpeg\` (passed through, not encoded)
- viewers: \`camloop load --mjpeg http://127.0.0.1:PORT/stream.mjpg --viewers N --warmup $WARMUP_S --duration $DURATION_S --server-pid PID --json\`
- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
- date: $(date -u '+%Y-%m-%d %H:%M UTC'), camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?')

CPU % is over the measured window only (100 = one core); RSS and descriptors are sampled mid-window; frame age is now - X-Timestamp at arrival (client) and the server's own \`frame_send_age_us_p99\`.

| camera | viewers | fps per viewer (mean) | fps (min) | stalled | dropped | errors | MB/s (all) | server CPU % | client CPU % | server RSS MiB | server fds / limit | grabs/s | encodes/s | passthrough/s | frame age p99 µs (client) | frame_send_age_us_p99 (server) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${VERDICTS[@]}"
