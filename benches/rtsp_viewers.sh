#!/usr/bin/env bash
# benches/rtsp_viewers.sh: RTSP fan-out of an H.264 camera, camloop against
# gst-rtsp-server serving the same stream, in the same run (issue 29).
#
#   benches/rtsp_viewers.sh > benches/results/rtsp_viewers.md
#
# The camera: a 10 s 1280x720 / 30 fps / 2 Mbit/s clip (x264 ultrafast,
# zerolatency, an IDR every 30 frames, -maxrate 2M -bufsize 1M), replayed in
# real time by an `exec:` ffmpeg child (`-re -stream_loop -1 -c copy -f
# h264`) into `camloop serve --rtsp 127.0.0.1:0 --rtsp-udp-ports 0`. The
# reference: benches/reference/rtsp_reference.py, gst-rtsp-server (the
# system's, 1.22 on Debian 12) looping the same clip's Annex-B bytes (`-c
# copy -f h264`, what the exec: child writes) through multifilesrc,
# h264parse and rtph264pay in one shared media, over TCP or UDP. The floor
# (TCP rows only): benches/reference/rtsp_floor.rs, a server that does
# nothing per viewer but one send() of each AU's interleaved RTP packets
# (packetised once for all, paced by its own clock), with camloop's RTSP
# parser and writers: what any server must spend at N viewers on this
# machine, the kernel's share, against which the other two are read.
#
# For each transport and viewer count (TCP_COUNTS, then UDP_COUNTS), the
# servers take turns in SERVERS order; each row gets a fresh server on
# 127.0.0.1, a keeper (one ffmpeg RTSP/TCP reader started SETTLE_S before the
# load, the same for both servers: it keeps gst-rtsp-server's shared media
# playing, so the measured viewers join a running stream as they would join
# a camera, and fills nothing camloop does not fill by itself), then
# `camloop load --rtsp URL --viewers N --transport tcp|udp --warmup WARMUP_S
# --duration DURATION_S --server-pid PID --json` (one single-threaded mio
# loop, RTP depacketised into access units). Per row:
#
# - fps per viewer (mean, min): access units each viewer received in the
#   window, from `camloop load --json`; stalled and dropped viewers, errors,
#   RTP packets lost (sequence gaps, the tool's count) and MB/s received;
# - server CPU % (user + system, /proc/PID/stat, over the measured window
#   only: the tool reads it with --server-pid; 100 = one core), the busiest
#   server thread's % (/proc/PID/task/*/stat across the same window, this
#   script's own clock), camloop's camera child (its ffmpeg) apart: the
#   reference reads and parses its clip inside its own process, so "camloop
#   + child" is the like-for-like figure; the client's CPU (the tool's own);
# - the machine in the same window (/proc/stat, all CPUs, 100 = one core):
#   busy (user, system, irq, softirq, steal), "others" (busy minus server,
#   camera child and client: other work, the keeper, the kernel), niced
#   others (work at a lower priority, which yields to this benchmark) and
#   steal (the hypervisor's);
# - server threads (/proc/PID/status), RSS (VmRSS) and descriptors, sampled
#   mid-window;
# - frame age p99 at the client (arrival - the AU's capture time on the
#   wall clock, from the RTP timestamp through the sender reports' NTP
#   mapping), all AUs and IDRs and non-IDR AUs apart where the tool
#   reports them;
# - camloop's own send age p99 from the control port's `stats` (an AU
#   ready to send -> written whole to a TCP viewer's socket):
#   `frame_send_age_us_p99` for the AUs that are not IDRs and
#   `idr_send_age_us_p99` for IDRs and the GOP cache a viewer starts with
#   (a server without that key has only the first, over every AU); over
#   this row's server's whole life, warmup and joins included; UDP
#   datagrams are not timed by it, so a UDP row shows n/a; the reference
#   has no such figure;
# - time to first picture: PLAY sent -> the first IDR complete, p50 and max
#   over the viewers (camloop sends a TCP viewer its GOP cache at once, and
#   a UDP viewer nothing before the next IDR; gst-rtsp-server waits for the
#   next IDR, up to one GOP, 1 s);
# - camloop's camera rate (`frames_grabbed` per s over the window) and, over
#   UDP, its `rtsp_udp_packets_dropped` in the window.
#
# After the table: each target of the issue with its measured value, and
# for each server the first row (TCP counts in order, then UDP) at which the
# slowest viewer falls below DROP_RATIO x FPS, and what ran out there:
# descriptors, the camera, a server thread or the client at BUSY_CPU_PERCENT
# of a core, or the machine's cores (busy, niced work included, at
# BUSY_CPU_PERCENT of all).
#
# The CPU target (camloop at most a third of gst-rtsp-server at 200 TCP
# viewers) is judged on the median ratio of CPU_ROUNDS rounds of 200-viewer
# runs: the table's row and CPU_ROUNDS - 1 repeats after the other rows,
# listed apart, the order rotating. One pair alone moves by a tenth of
# the ratio or more between runs on this shared machine. The floor runs in
# every round too: the medians of floor / gst-rtsp-server and camloop /
# floor say how much of the target is left to any server on this machine,
# and how much of camloop's CPU is its own.
#
# Environment: CPU_ROUNDS (5), TCP_COUNTS (default "1 100 200 500"), UDP_COUNTS ("100"; empty for none),
# DURATION_S (10), WARMUP_S (2), SETTLE_S (3), SERVERS ("camloop gst floor"),
# CAMLOOP (a camloop binary to use instead of building one), CAMLOOP_LOAD
# (the binary whose `load` is run; default CAMLOOP). A smoke run that only
# checks the script:
#
#   TCP_COUNTS="1 5" UDP_COUNTS="2" DURATION_S=1 WARMUP_S=1 SETTLE_S=2 benches/rtsp_viewers.sh
#
# About 11 minutes with the defaults. Needs ffmpeg (libx264), Debian's
# /usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0, and
# GStreamer's good and bad plugins (scripts/setup.sh test). 500 viewers take
# 500 descriptors in each process: the script raises its soft limit to the
# hard one. Only 127.0.0.1 is contacted; everything started here is stopped
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

TCP_COUNTS=${TCP_COUNTS:-"1 100 200 500"}
UDP_COUNTS=${UDP_COUNTS-"100"}  # empty: no UDP row
DURATION_S=${DURATION_S:-10}   # measured seconds per row
WARMUP_S=${WARMUP_S:-2}        # seconds of streaming (and connecting) before each window
SETTLE_S=${SETTLE_S:-3}        # seconds between a server's start (keeper playing) and its load
SERVERS=${SERVERS:-"camloop gst floor"}
CPU_ROUNDS=${CPU_ROUNDS:-5}    # rounds of 200 TCP viewer runs the CPU target is judged on (the table's row is the first)
FPS=30
CLIP_S=10
DROP_RATIO=0.9                 # the slowest viewer below this x FPS: the rate dropped
BUSY_CPU_PERCENT=90            # a process (or thread) at this much of one core has run out
REFERENCE=benches/reference/rtsp_reference.py
FLOOR_BENCH=rtsp_floor         # benches/reference/rtsp_floor.rs
PYTHON=/usr/bin/python3        # Debian's, with gi
HZ=$(getconf CLK_TCK)

TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/camloop-rtsp-viewers.XXXXXX)
PIDS=()      # every process started here
REF_FD=      # the write end of the reference's stdin
cleanup() {
    local pid
    [[ -n $REF_FD ]] && exec {REF_FD}>&- 2>/dev/null
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "rtsp_viewers: $*" >&2; }
. benches/proc.sh  # cpu_ticks, rss_kib, open_fds, fd_limit, json_field

for tool in ffmpeg "$PYTHON"; do
    command -v "$tool" >/dev/null || { log "$tool is needed (scripts/setup.sh test)"; exit 1; }
done
if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi
LOAD=${CAMLOOP_LOAD:-$CAMLOOP}
FLOOR=
if [[ " $SERVERS " == *" floor "* ]]; then
    log "building the floor (cargo bench --no-default-features --bench $FLOOR_BENCH --no-run)"
    # The build reports every artifact (camloop's binary too): the floor's
    # is the one whose target has its name.
    FLOOR=$(cargo bench --no-default-features --quiet --bench "$FLOOR_BENCH" --no-run --message-format=json 2>/dev/null |
        grep "\"name\":\"$FLOOR_BENCH\"" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [[ -x $FLOOR ]] || { log "the floor did not build (cargo bench --bench $FLOOR_BENCH --no-run)"; exit 1; }
fi
if ! "$LOAD" load --help 2>/dev/null | grep -q -- '--rtsp'; then
    log "$LOAD load has no --rtsp mode (CAMLOOP_LOAD=a binary that has it)"
    exit 1
fi

log "encoding a ${CLIP_S} s 1280x720 H.264 clip at $FPS fps and its Annex-B copy"
CLIP=$WORK/clip.mkv
RAW=$WORK/clip.h264
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=$FPS" -t "$CLIP_S" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g "$FPS" -b:v 2M -maxrate 2M -bufsize 1M \
    -pix_fmt yuv420p "$CLIP"
# The bytes the exec: child writes: -c copy -f h264 puts the SPS and PPS
# (from the Matroska header) before every IDR.
ffmpeg -nostdin -loglevel error -i "$CLIP" -c copy -f h264 "$RAW"
EXEC_CAMERA="exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $CLIP -c copy -f h264 -"

# stats_line PORT: the `OK key=value ...` line of camloop's `stats`.
stats_line() { "$CAMLOOP" ctl "127.0.0.1:$1" stats 2>>"$WORK/ctl.err" | grep '^OK' || true; }
# stat KEY LINE: the value of KEY in a stats line, or nothing.
stat() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
# jf FILE KEY...: the first of the KEYs with a value in a JSON report, or n/a.
jf() {
    local file=$1 key value; shift
    for key; do
        value=$(json_field "$key" "$file")
        if [[ -n $value && $value != null ]]; then echo "$value"; return; fi
    done
    echo n/a
}
# ms MICROSECONDS: milliseconds with one decimal, n/a stays.
ms() { [[ $1 == n/a ]] && echo n/a || awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
# machine_ticks: "BUSY NICED STEAL" ticks of all CPUs together (/proc/stat;
# busy: user, system, irq, softirq and steal; niced apart: other work run at
# a lower priority than this benchmark, which yields to it).
machine_ticks() { awk '/^cpu / { print $2 + $4 + $7 + $8 + $9, $3, $9; exit }' /proc/stat; }
now_s() { date +%s.%N; }
# percent_over TICKS SECONDS: ticks as % of one core over SECONDS.
percent_over() { awk -v t="$1" -v hz="$HZ" -v d="$2" 'BEGIN { printf "%.1f", 100 * t / hz / d }'; }
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
# task_ticks PID: "TID TICKS" per thread.
task_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        echo "${task##*/} $(sed 's/.*) //' "$task/stat" 2>/dev/null | awk '{ print $12 + $13 }')"
    done
}
# busiest_thread BEFORE AFTER SECONDS: the largest per-thread tick delta, % of one core.
busiest_thread() {
    local ticks
    ticks=$(awk 'NR == FNR { before[$1] = $2; next } { d = $2 - before[$1]; if (d > m) m = d } END { print m + 0 }' "$1" "$2")
    percent_over "$ticks" "$3"
}
# The first child of process $1 (camloop's camera ffmpeg), from /proc.
child_of() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(sed 's/.*) //' "$p/stat" 2>/dev/null | awk '{ print $2 }') == "$1" ]] && { basename "$p"; return; }
    done
    return 0
}
# stop PID...: SIGTERM, then wait.
stop() {
    local pid
    for pid; do kill "$pid" 2>/dev/null || true; done
    for pid; do wait "$pid" 2>/dev/null || true; done
}

SERVER_PID=
SERVER_URL=
SERVER_CTL=
# start_camloop: a fresh camloop, its RTSP URL in SERVER_URL.
start_camloop() {
    local out=$WORK/camloop.out attempt line
    : >"$out"
    "$CAMLOOP" serve --rtsp 127.0.0.1:0 --rtsp-udp-ports 0 --listen 127.0.0.1:0 --http 127.0.0.1:0 \
        --camera "$EXEC_CAMERA" --fps "$FPS" --snapshot-dir "$WORK/snapshots" \
        >"$out" 2>>"$WORK/camloop.log" &
    SERVER_PID=$!; PIDS+=("$SERVER_PID")
    for attempt in $(seq 50); do
        line=$(grep -m 1 '^listening control=.* rtsp=127' "$out" || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    SERVER_CTL=$(sed -n 's/^listening control=127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
    local rtsp; rtsp=$(sed -n 's/.* rtsp=\(127\.0\.0\.1:[0-9]*\).*/\1/p' <<<"$line")
    if [[ -z $SERVER_CTL || -z $rtsp ]]; then
        log "camloop did not start: $(tail -c 300 "$WORK/camloop.log")"
        exit 1
    fi
    SERVER_URL="rtsp://$rtsp/"
}
# start_reference NAME COMMAND...: a fresh gst-rtsp-server or floor, its
# stdin a FIFO this script holds open (either stops when it closes, so
# none outlives the benchmark, even a killed one).
start_reference() {
    local name=$1 out=$WORK/$1.out attempt; shift
    : >"$out"
    rm -f "$WORK/$name.in"; mkfifo "$WORK/$name.in"
    "$@" <"$WORK/$name.in" >"$out" 2>>"$WORK/$name.log" &
    SERVER_PID=$!; PIDS+=("$SERVER_PID")
    exec {REF_FD}>"$WORK/$name.in"
    SERVER_CTL=
    for attempt in $(seq 100); do
        SERVER_URL=$(sed -n 's/^ready \(rtsp:\/\/127\.0\.0\.1:[0-9]*\/.*\)$/\1/p' "$out")
        [[ -n $SERVER_URL ]] && return
        sleep 0.1
    done
    log "$name did not start: $(tail -c 300 "$WORK/$name.log")"
    exit 1
}
# server_name SERVER: how the tables name it.
server_name() {
    case $1 in
        gst) echo gst-rtsp-server ;;
        floor) echo "floor (send only)" ;;
        *) echo "$1" ;;
    esac
}
stop_server() {
    local child=${1:-}
    if [[ -n $REF_FD ]]; then exec {REF_FD}>&-; REF_FD=; fi
    stop "$SERVER_PID"
    [[ -n $child ]] && stop "$child"
    SERVER_PID=
}

ROWS=()
declare -A R  # R[server,transport,count,field]: the figures the targets and verdicts read
declare -A CPU_SERIES  # CPU_SERIES[server,transport,count]: server CPU % of every round, in order
ROUND_ROWS=()  # the repeated 200 TCP viewer runs
DROPPED_AT=() # one line per server

# measure SERVER TRANSPORT COUNT: one row.
measure() {
    local server=$1 transport=$2 viewers=$3 round=${4:-1} name
    name=$(server_name "$server")
    case $server in
        camloop) start_camloop ;;
        gst) start_reference gst "$PYTHON" "$REFERENCE" "$RAW" 0 "$FPS" ;;
        floor) start_reference floor "$FLOOR" "$RAW" 0 "$FPS" ;;
    esac
    local keeper_log=$WORK/keeper-$server-$transport-$viewers.log
    ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$SERVER_URL" -c copy -f null - \
        >/dev/null 2>"$keeper_log" &
    local keeper=$!; PIDS+=("$keeper")
    sleep "$SETTLE_S"
    local child=""; [[ $server == camloop ]] && child=$(child_of "$SERVER_PID")
    log "$name: $viewers $transport viewer(s), ${WARMUP_S} s warmup + ${DURATION_S} s"
    local run=$WORK/load-$server-$transport-$viewers.json
    timeout "$(awk -v w="$WARMUP_S" -v d="$DURATION_S" 'BEGIN { print int(w + d + 60) }')" \
        "$LOAD" load --rtsp "$SERVER_URL" --viewers "$viewers" --transport "$transport" \
        --warmup "$WARMUP_S" --duration "$DURATION_S" --server-pid "$SERVER_PID" --json \
        >"$run" 2>"$run.err" &
    local client=$!; PIDS+=("$client")
    sleep "$WARMUP_S"
    local before="" after="" s0 s1 c0="" c1=""
    [[ -n $SERVER_CTL ]] && before=$(stats_line "$SERVER_CTL")
    s0=$(cpu_ticks "$SERVER_PID"); [[ -n $child ]] && c0=$(cpu_ticks "$child")
    task_ticks "$SERVER_PID" >"$WORK/tasks0"
    local m0 t0; m0=$(machine_ticks); t0=$(now_s)
    sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
    local rss threads fds
    rss=$(awk -v k="$(rss_kib "$SERVER_PID")" 'BEGIN { printf "%.1f", k / 1024 }')
    threads=$(threads_of "$SERVER_PID")
    fds=$(open_fds "$SERVER_PID")
    sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
    s1=$(cpu_ticks "$SERVER_PID"); [[ -n $child && -e /proc/$child ]] && c1=$(cpu_ticks "$child")
    task_ticks "$SERVER_PID" >"$WORK/tasks1"
    local m1 t1 window; m1=$(machine_ticks); t1=$(now_s)
    window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')  # this script's window, in s
    [[ -n $SERVER_CTL ]] && after=$(stats_line "$SERVER_CTL")
    if ! wait "$client"; then
        log "camloop load failed ($name, $viewers $transport): $(head -c 300 "$run.err")"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$name died with $viewers $transport viewers"
        exit 1
    fi
    local keeper_alive=yes; kill -0 "$keeper" 2>/dev/null || keeper_alive=no
    stop "$keeper"
    stop_server "$child"

    local f=$run mean min stalled dropped errors lost mbps server_cpu own_cpu busiest child_cpu client_cpu
    mean=$(jf "$f" fps_per_viewer_mean)
    min=$(jf "$f" fps_per_viewer_min)
    stalled=$(jf "$f" stalled_viewers)
    dropped=$(jf "$f" dropped_viewers)
    errors=$(jf "$f" errors)
    lost=$(jf "$f" rtp_packets_lost)
    mbps=$(jf "$f" bytes_per_s); [[ $mbps != n/a ]] && mbps=$(awk -v b="$mbps" 'BEGIN { printf "%.2f", b / 1e6 }')
    own_cpu=$(percent_over "$((s1 - s0))" "$window")
    server_cpu=$(jf "$f" server_cpu_percent); [[ $server_cpu == n/a ]] && server_cpu=$own_cpu
    busiest=$(busiest_thread "$WORK/tasks0" "$WORK/tasks1" "$window")
    child_cpu=n/a; [[ -n $c0 && -n $c1 ]] && child_cpu=$(percent_over "$((c1 - c0))" "$window")
    local together=$server_cpu
    [[ $child_cpu != n/a ]] && together=$(awk -v a="$server_cpu" -v b="$child_cpu" 'BEGIN { printf "%.1f", a + b }')
    client_cpu=$(jf "$f" tool_cpu_percent)
    # The whole machine in the window, and what neither server, camera child
    # nor client used (other work, the keeper, the kernel's softirqs).
    local busy niced steal others b0 n0 st0 b1 n1 st1
    read -r b0 n0 st0 <<<"$m0"; read -r b1 n1 st1 <<<"$m1"
    busy=$(percent_over "$((b1 - b0))" "$window")
    niced=$(percent_over "$((n1 - n0))" "$window")
    steal=$(percent_over "$((st1 - st0))" "$window")
    others=$(awk -v b="$busy" -v s="$together" -v c="$client_cpu" 'BEGIN { if (c == "n/a") c = 0; o = b - s - c; printf "%.1f", o < 0 ? 0 : o }')
    local age age_idr age_non_idr first_p50 first_max first_idrs first_error
    age=$(jf "$f" frame_age_p99_us)
    age_idr=$(jf "$f" frame_age_idr_p99_us)
    age_non_idr=$(jf "$f" frame_age_non_idr_p99_us)
    first_p50=$(ms "$(jf "$f" first_idr_p50_us first_idr_us_p50)")
    first_max=$(ms "$(jf "$f" first_idr_max_us first_idr_us_max)")
    first_idrs=$(jf "$f" first_idrs)
    first_error=$(json_field first_error "$f" | tr -d '"')
    local send_age=n/a idr_send_age=n/a grabs=n/a udp_dropped=n/a
    if [[ -n $after ]]; then
        if [[ $transport == tcp ]]; then
            send_age=$(stat frame_send_age_us_p99 "$after")
            idr_send_age=$(stat idr_send_age_us_p99 "$after")
        fi
        grabs=$(awk -v a="$(stat frames_grabbed "$before")" -v b="$(stat frames_grabbed "$after")" \
            -v d="$DURATION_S" 'BEGIN { printf "%.1f", (b - a) / d }')
        if [[ $transport == udp ]]; then
            udp_dropped=$(awk -v a="$(stat rtsp_udp_packets_dropped "$before")" \
                -v b="$(stat rtsp_udp_packets_dropped "$after")" 'BEGIN { print (a == "" || b == "") ? "n/a" : b - a }')
        fi
    fi
    [[ $keeper_alive == no ]] && log "$name: the keeper had stopped by the end ($(head -c 200 "$keeper_log"))"
    if [[ $server != camloop ]]; then
        for a in age age_idr age_non_idr; do if [[ ${!a} != n/a ]]; then printf -v "$a" '[%s]' "${!a}"; fi; done
    fi
    CPU_SERIES[$server,$transport,$viewers]+="$server_cpu "
    if ((round > 1)); then
        # A repeat for the CPU target: its own short row, nothing else kept.
        ROUND_ROWS+=("| $round | $name | $mean | $min | $stalled | $dropped | $errors | $server_cpu | $child_cpu | $client_cpu | $busy | $steal |")
        sleep 1
        return
    fi
    ROWS+=("| $name | $transport | $viewers | $mean | $min | $stalled | $dropped | $errors | $lost | $udp_dropped | $mbps | $server_cpu | $busiest | $child_cpu | $together | $client_cpu | $busy | $others | $niced | $steal | $threads | $rss | $fds / $(ulimit -n) | $age | $age_idr | $age_non_idr | ${send_age:-n/a} | ${idr_send_age:-n/a} | $first_idrs | $first_p50 | $first_max | $grabs |")
    local key="$server,$transport,$viewers"
    R[$key,mean]=$mean; R[$key,min]=$min; R[$key,cpu]=$server_cpu; R[$key,together]=$together
    R[$key,first_p50]=$first_p50; R[$key,first_max]=$first_max; R[$key,send_age]=${send_age:-n/a}; R[$key,idr_send_age]=${idr_send_age:-n/a}
    R[$key,age_non_idr]=$age_non_idr; R[$key,stalled]=$stalled; R[$key,dropped]=$dropped
    # The first row at which the slowest viewer drops, and what ran out.
    if [[ -z ${R[$server,dropped_at]:-} ]] && awk -v m="$min" -v f="$FPS" -v r="$DROP_RATIO" \
        'BEGIN { exit !(m == "n/a" || m < f * r) }'; then
        R[$server,dropped_at]="$viewers $transport"
        R[$server,verdict]=$(awk -v s="$server_cpu" -v t="$busiest" -v c="$client_cpu" -v busy="$BUSY_CPU_PERCENT" \
            -v cores="$(nproc)" -v e="$first_error" -v g="$grabs" -v f="$FPS" -v r="$DROP_RATIO" \
            -v m="$busy" -v n="$niced" -v o="$others" -v st="$steal" 'BEGIN {
                if (c == "n/a") c = 0
                if (e ~ /[Tt]oo many open files/) print "descriptors (" e ")"
                else if (g != "n/a" && g < f * r) print "the camera itself: it delivered " g " frames/s"
                else if (t >= busy && c >= busy) print "a server thread (" t " % of a core) and the client (" c " %)"
                else if (t >= busy) print "the server'"'"'s busiest thread (" t " % of a core; the process " s " %)"
                else if (c >= busy) print "the client'"'"'s CPU (" c " % of a core)"
                else if (m + n >= busy * cores) print "the machine'"'"'s cores: " m + n " % of " cores * 100 " busy (server " s " %, client " c " %, other processes " o " %, niced other work " n " %, steal " st " %)"
                else print "none of a server thread (" t " %), the client (" c " %) or descriptors: look at stalls, drops and losses"
            }')
    fi
    sleep 1
}

for viewers in $TCP_COUNTS; do
    for server in $SERVERS; do measure "$server" tcp "$viewers"; done
done
for viewers in $UDP_COUNTS; do
    for server in $SERVERS; do [[ $server != floor ]] && measure "$server" udp "$viewers"; done
done
# The CPU target compares two figures that each move by a tenth or more
# from one run to the next on a shared machine (other tenants, steal): it
# is judged on the median of CPU_ROUNDS rounds, the order rotating so that
# no server always runs first.
if [[ " $TCP_COUNTS " == *" 200 "* && " $SERVERS " == *" camloop "* && " $SERVERS " == *" gst "* ]]; then
    read -r -a order <<<"$SERVERS"
    for ((round = 2; round <= CPU_ROUNDS; round++)); do
        order=("${order[@]:1}" "${order[0]}")
        for server in "${order[@]}"; do measure "$server" tcp 200 "$round"; done
    done
fi

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
gst_version=$("$PYTHON" -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst; Gst.init(None); print(Gst.version_string())' 2>/dev/null || echo '?')
load_rev=$(git -C "$(dirname "$(readlink -f "$LOAD")")" rev-parse --short HEAD 2>/dev/null || echo '?')
cat <<EOF
# RTSP fan-out: camloop against gst-rtsp-server, 1280x720 / $FPS fps / 2 Mbit/s H.264

- command: \`CPU_ROUNDS=$CPU_ROUNDS TCP_COUNTS="$TCP_COUNTS" UDP_COUNTS="$UDP_COUNTS" DURATION_S=$DURATION_S WARMUP_S=$WARMUP_S SETTLE_S=$SETTLE_S benches/rtsp_viewers.sh\`
- camloop: \`camloop serve --rtsp 127.0.0.1:0 --rtsp-udp-ports 0 --listen 127.0.0.1:0 --http 127.0.0.1:0 --camera 'exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i CLIP.mkv -c copy -f h264 -' --fps $FPS\`, release build without default features, camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ $LOAD != "$CAMLOOP" ]] && echo "; the load tool from \`$LOAD\` (built from $load_rev)" )
- reference: \`/usr/bin/python3 benches/reference/rtsp_reference.py CLIP.h264\` ($gst_version, gst-rtsp-server's defaults, one shared media)
- floor (TCP rows): \`cargo bench --no-default-features --bench rtsp_floor --no-run\`, then \`rtsp_floor CLIP.h264 0 $FPS\`: one send() per viewer per AU and nothing else (benches/reference/rtsp_floor.rs)
- clip: \`ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=$FPS -t $CLIP_S -c:v libx264 -preset ultrafast -tune zerolatency -g $FPS -b:v 2M -maxrate 2M -bufsize 1M -pix_fmt yuv420p CLIP.mkv\`; CLIP.h264 = \`ffmpeg -i CLIP.mkv -c copy -f h264\`
- viewers: \`camloop load --rtsp URL --viewers N --transport T --warmup $WARMUP_S --duration $DURATION_S --server-pid PID --json\`, plus one ffmpeg RTSP/TCP keeper per server started ${SETTLE_S} s before; a fresh server for each row, the servers taking turns ($SERVERS)
- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), shared with other work (expect noise); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
- date: $(date -u '+%Y-%m-%d %H:%M UTC')

gst-rtsp-server's and the floor's client frame ages are in brackets: gst-rtsp-server's sender reports tie RTP time to its pipeline's clock, not to the wall-clock time of capture (seconds apart here), and the floor's to the moment it sends, so they are not ages; camloop's are (its capture time is when an AU started arriving, so they include about one frame interval, the AU-complete delay). CPU % is over the measured window only (100 = one core): the server process, its busiest thread, camloop's camera child (the reference parses its clip in-process) and the two together, and the load tool's own. Threads, RSS and descriptors are sampled mid-window. Client frame age: arrival - capture time (RTP timestamp through the sender reports). \`frame_send_age_us_p99\` (AUs that are not IDRs) and \`idr_send_age_us_p99\` (IDRs and the GOP cache) are camloop's own, over the row's whole server life (warmup and joins included), TCP viewers only (the keeper's alone in a UDP row: n/a). First IDR: PLAY -> the first IDR, over the viewers. lost: RTP packets the tool saw missing; UDP drops: camloop's \`rtsp_udp_packets_dropped\` in the window.

| server | transport | viewers | fps per viewer (mean) | fps (min) | stalled | dropped | errors | RTP lost | UDP drops (server) | MB/s (all) | server CPU % | busiest thread % | camera child CPU % | server + child % | client CPU % | machine busy % (of $(( $(nproc) * 100 ))) | others % | niced others % | steal % | threads | RSS MiB | fds / limit | frame age p99 µs (client, all) | IDR | non-IDR | frame_send_age_us_p99 (server, non-IDR) | idr_send_age_us_p99 | viewers with an IDR | first IDR p50 ms | max ms | camera AUs/s |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${ROWS[@]}"
echo
if ((${#ROUND_ROWS[@]} > 0)); then
    echo "200 TCP viewers again, for the CPU target (rounds 2 to $CPU_ROUNDS, each a fresh server and keeper as above; the order rotates, round 2 starting with the second of $SERVERS):"
    echo
    echo "| round | server | fps (mean) | fps (min) | stalled | dropped | errors | server CPU % | camera child CPU % | client CPU % | machine busy % | steal % |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROUND_ROWS[@]}"
    echo
fi
# The targets, each with its figures.
v() { echo "${R[$1]:-n/a}"; }
# median_ratio "A1 A2 ..." "B1 B2 ...": round by round A / B, then "MEDIAN
# SORTED-LIST" (n/a where no round has both).
median_ratio() {
    awk -v as="$1" -v bs="$2" 'BEGIN {
        n = split(as, a, " "); split(bs, b, " "); k = 0
        for (i = 1; i <= n; i++) if (a[i] != "n/a" && b[i] != "n/a" && b[i] > 0) r[++k] = a[i] / b[i]
        if (k == 0) { print "n/a n/a"; exit }
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
        median = (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2
        list = ""; for (i = 1; i <= k; i++) list = list (i > 1 ? ", " : "") sprintf("%.2f", r[i])
        printf "%.3f %s", median, list
    }'
}
echo "## Targets"
echo
last_tcp=$(awk '{ print $NF }' <<<"$TCP_COUNTS")
if [[ " $SERVERS " == *" camloop "* ]]; then
    mins=""; ok=yes
    for n in $TCP_COUNTS; do
        m=$(v "camloop,tcp,$n,min"); mins+="$n: $m (stalled $(v "camloop,tcp,$n,stalled"), dropped $(v "camloop,tcp,$n,dropped")); "
        awk -v m="$m" -v f="$FPS" -v r="$DROP_RATIO" 'BEGIN { exit !(m == "n/a" || m < f * r) }' && ok=no
        [[ $(v "camloop,tcp,$n,stalled") != 0 || $(v "camloop,tcp,$n,dropped") != 0 ]] && ok=no
    done
    echo "- every viewer at full rate (slowest ≥ $DROP_RATIO × $FPS fps, none stalled or dropped) through $last_tcp TCP viewers: camloop's slowest viewer ${mins%; } → **$( [[ $ok == yes ]] && echo PASS || echo FAIL )**"
    if [[ " $TCP_COUNTS " == *" 200 "* && " $SERVERS " == *" gst "* ]]; then
        c=$(v camloop,tcp,200,cpu); g=$(v gst,tcp,200,cpu); ct=$(v camloop,tcp,200,together)
        read -r median ratios <<<"$(median_ratio "${CPU_SERIES[camloop,tcp,200]}" "${CPU_SERIES[gst,tcp,200]}")"
        pass=$(awk -v m="$median" 'BEGIN { print (m == "n/a" ? "n/a" : (m <= 1 / 3 ? "PASS" : "FAIL")) }')
        echo "- camloop's CPU at 200 TCP viewers ≤ ⅓ of gst-rtsp-server's, the median of $CPU_ROUNDS rounds: camloop ${CPU_SERIES[camloop,tcp,200]% }, gst-rtsp-server ${CPU_SERIES[gst,tcp,200]% } % of a core (round by round); ratios sorted $ratios; median **$median** → **$pass** (the table's row alone: $c / $g %, ratio $(awk -v c="$c" -v g="$g" 'BEGIN { if (g == "n/a" || g == 0) print "n/a"; else printf "%.2f", c / g }'); camloop + its camera child $ct %)"
        if [[ -n ${CPU_SERIES[floor,tcp,200]:-} ]]; then
            read -r floor_gst floor_gst_list <<<"$(median_ratio "${CPU_SERIES[floor,tcp,200]}" "${CPU_SERIES[gst,tcp,200]}")"
            read -r camloop_floor camloop_floor_list <<<"$(median_ratio "${CPU_SERIES[camloop,tcp,200]}" "${CPU_SERIES[floor,tcp,200]}")"
            echo "  - the floor in the same rounds (one send() per viewer per AU, nothing else): ${CPU_SERIES[floor,tcp,200]% } % of a core; floor / gst-rtsp-server sorted $floor_gst_list, median **$floor_gst** (what sending each viewer each AU once costs here, before any server's own work); camloop / floor sorted $camloop_floor_list, median **$camloop_floor** (camloop's CPU as a multiple of the sends alone)"
        fi
    fi
    # The GOP cache goes to TCP viewers only (camloop's UDP viewers start at
    # the next IDR: a burst of datagrams would overflow a receive buffer), so
    # the target is judged on the TCP rows and the UDP rows are shown apart.
    p50s=""; ok=yes
    for n in $TCP_COUNTS; do
        p=$(v "camloop,tcp,$n,first_p50"); p50s+="$n: $p ms (gst-rtsp-server $(v "gst,tcp,$n,first_p50") ms); "
        awk -v p="$p" 'BEGIN { exit !(p == "n/a" || p >= 50) }' && ok=no
    done
    udp=""
    for n in $UDP_COUNTS; do
        udp+="$n: $(v "camloop,udp,$n,first_p50") ms (gst-rtsp-server $(v "gst,udp,$n,first_p50") ms); "
    done
    echo "- PLAY → first decodable picture (the first IDR complete) p50 < 50 ms for camloop (GOP cache), TCP viewers: ${p50s%; } → **$( [[ $ok == yes ]] && echo PASS || echo FAIL )**${udp:+. Over UDP camloop sends no GOP cache and waits for the next IDR, as gst-rtsp-server does: ${udp%; }}"
    if [[ " $TCP_COUNTS " == *" 100 "* ]]; then
        s=$(v camloop,tcp,100,send_age); i=$(v camloop,tcp,100,idr_send_age)
        if [[ $i != n/a ]]; then
            what="\`frame_send_age_us_p99\` (the server's, AUs that are not IDRs) = $s µs at 100 TCP viewers (IDRs and GOP caches apart: \`idr_send_age_us_p99\` = $i µs)"
        else
            what="the server reports one p99 over every AU (IDRs included): \`frame_send_age_us_p99\` = $s µs at 100 TCP viewers"
        fi
        echo "- \`frame_send_age\` p99 < 2 ms at 100 viewers for non-IDR AUs: $what → **$(awk -v s="$s" 'BEGIN { print (s == "n/a" ? "n/a" : (s < 2000 ? "PASS" : "FAIL")) }')** (the client's non-IDR frame age p99 in the same row, AU-complete delay included: $(v camloop,tcp,100,age_non_idr) µs)"
    fi
fi
echo
echo "## Where the rate first drops"
echo
for server in $SERVERS; do
    name=$(server_name "$server")
    if [[ -n ${R[$server,dropped_at]:-} ]]; then
        echo "- $name: the slowest viewer first falls below $DROP_RATIO × $FPS fps at **${R[$server,dropped_at]}** viewers; ran out: ${R[$server,verdict]}"
    else
        udp_rows=""; [[ -n $UDP_COUNTS && $server != floor ]] && udp_rows="; UDP $UDP_COUNTS"
        echo "- $name: every viewer at ≥ $DROP_RATIO × $FPS fps in every row measured (TCP $TCP_COUNTS$udp_rows)"
    fi
done
