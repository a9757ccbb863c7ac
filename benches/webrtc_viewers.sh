#!/usr/bin/env bash
# benches/webrtc_viewers.sh: WebRTC fan-out of an H.264 camera (issue 31).
#
#   benches/webrtc_viewers.sh > benches/results/webrtc_viewers.md
#
# The camera: a 10 s 1280x720 / 30 fps / 2 Mbit/s clip (x264 ultrafast,
# zerolatency, an IDR every 30 frames, -maxrate 2M -bufsize 1M), replayed in
# real time by an `exec:` ffmpeg child (`-re -stream_loop -1 -c copy -f
# h264`) into `camloop serve --webrtc 127.0.0.1:0`. For each viewer count
# (COUNTS) a fresh server, a keeper (curl reading /stream.h264, started
# SETTLE_S before the load, so the camera runs and its GOP cache is full
# when the viewers join, as they would join a running camera), then
# `camloop load --whep URL/whep --viewers N --warmup WARMUP_S --duration
# DURATION_S --server-pid PID --json` (one single-threaded mio loop, a str0m
# peer with full ICE and a UDP socket per viewer); then, in a window of its
# own beside N viewers again (a second load run), one Chromium tab
# (benches/webrtc_tab.mjs) watching the same camera over WHEP: decoding
# 720p in software takes most of a core on a 2-core machine, which would
# otherwise be in the server's figures. Per row:
#
# - fps per viewer (mean, min), stalled and dropped viewers, errors, NACKs
#   and PLIs the viewers sent, datagrams the kernel dropped on the client
#   (SO_RXQ_OVFL) and MB/s received, from `camloop load --json`;
# - server CPU % over the measured window (the tool's --server-pid; 100 =
#   one core), the camera child's apart, the client's;
# - CPU per packet: the server's CPU time in the window over the datagrams
#   it sent in it (/state `webrtc_packets_sent`, read at the window's
#   edges by this script): SRTP and packetising per peer are the inherent
#   part, since every peer has its own keys;
# - RSS mid-window, and memory per peer: (RSS mid-window - RSS before the
#   load) / N;
# - frame age p99 at the client (arrival - the AU's abs-capture-time, on
#   the wall clock), non-IDR AUs and IDRs apart (the GOP cache's IDR is
#   old by design); the server's `frame_send_age_us_p99` (non-IDR AUs) and
#   `idr_send_age_us_p99` from /state at the end of the row (its whole
#   life);
# - time to first picture (the offer's connect -> its first IDR complete),
#   p50 and max over the viewers, who all join at once; and p50 and max
#   over JOINERS single viewers joining one after another beside N others
#   (a second run of N), what one more viewer of a watched camera waits;
#   its DTLS handshake and the server's answer (a str0m session, its own
#   DTLS context, the offer parsed) are in both;
# - the Chromium tab: capture -> render age p50/p99 (its receiver's
#   getSynchronizationSources(): timestamp - captureTimestamp, with
#   abs-capture-time negotiated), jitterBufferDelay / jitterBufferEmittedCount
#   and its frames decoded.
#
# After the table: each target with its measured value, and the first row
# at which the slowest viewer falls below DROP_RATIO x FPS, and what ran out.
#
# Environment: COUNTS (default "1 10 100"), DURATION_S (10), WARMUP_S (3),
# SETTLE_S (3), TAB (1; 0 for no Chromium tab), JOINERS (5), CAMLOOP (a
# camloop binary instead of building one), BROWSER_DIR (a tests/browser with
# node_modules/playwright-core, default this checkout's). A smoke run:
#
#   COUNTS="1 2" DURATION_S=2 WARMUP_S=2 SETTLE_S=2 benches/webrtc_viewers.sh
#
# About a minute a row. Needs ffmpeg (libx264), curl, and for the tab node
# with playwright-core and /usr/bin/chromium (scripts/setup.sh test). Run as
# root for the client's larger socket buffers. Only 127.0.0.1 is contacted;
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${COUNTS:-"1 10 100"}
DURATION_S=${DURATION_S:-10}
WARMUP_S=${WARMUP_S:-3}
SETTLE_S=${SETTLE_S:-3}
TAB=${TAB:-1}
JOINERS=${JOINERS:-5}  # single viewers joining one at a time beside N
FPS=30
CLIP_S=10
DROP_RATIO=0.9
BUSY_CPU_PERCENT=90
HZ=$(getconf CLK_TCK)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/camloop-webrtc-viewers.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "webrtc_viewers: $*" >&2; }
. benches/proc.sh  # cpu_ticks, rss_kib, json_field

for tool in ffmpeg curl; do
    command -v "$tool" >/dev/null || { log "$tool is needed (scripts/setup.sh test)"; exit 1; }
done
if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi

log "encoding a ${CLIP_S} s 1280x720 H.264 clip at $FPS fps"
CLIP=$WORK/clip.mkv
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=$FPS" -t "$CLIP_S" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g "$FPS" -b:v 2M -maxrate 2M -bufsize 1M \
    -pix_fmt yuv420p "$CLIP"
EXEC_CAMERA="exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $CLIP -c copy -f h264 -"

# jf FILE KEY: a field of a one-line JSON report, or n/a.
jf() {
    local value
    value=$(json_field "$2" "$1" 2>/dev/null | head -n 1)
    [[ -n $value && $value != null ]] && echo "$value" || echo n/a
}
ms() { [[ $1 == n/a ]] && echo n/a || awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
ms2() { [[ $1 == n/a ]] && echo n/a || awk -v u="$1" 'BEGIN { printf "%.1f", u }'; }
percent_over() { awk -v t="$1" -v hz="$HZ" -v d="$2" 'BEGIN { printf "%.1f", 100 * t / hz / d }'; }
now_s() { date +%s.%N; }
child_of() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(sed 's/.*) //' "$p/stat" 2>/dev/null | awk '{ print $2 }') == "$1" ]] && { basename "$p"; return; }
    done
    return 0
}
stop() {
    local pid
    for pid; do kill "$pid" 2>/dev/null || true; done
    for pid; do wait "$pid" 2>/dev/null || true; done
}
# state_field BASE KEY: a number from the server's /state.
state_field() {
    curl -s --max-time 5 "$1/state" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" | head -n 1
}

ROWS=()
declare -A R

measure() {
    local viewers=$1 out=$WORK/camloop-$1.out attempt line
    : >"$out"
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --webrtc 127.0.0.1:0 \
        --webrtc-max-peers $((viewers + 4)) --camera "$EXEC_CAMERA" --fps "$FPS" \
        --snapshot-dir "$WORK/snapshots" >"$out" 2>>"$WORK/camloop.log" &
    local server=$!; PIDS+=("$server")
    for attempt in $(seq 50); do
        line=$(grep -m 1 '^listening .* webrtc=127' "$out" || true)
        [[ -n $line ]] && break
        sleep 0.1
    done
    local http; http=$(sed -n 's/.* http=\(127\.0\.0\.1:[0-9]*\).*/\1/p' <<<"$line")
    [[ -n $http ]] || { log "camloop did not start: $(tail -c 300 "$WORK/camloop.log")"; exit 1; }
    local base="http://$http"
    curl -s -o /dev/null "$base/stream.h264" &
    local keeper=$!; PIDS+=("$keeper")
    sleep "$SETTLE_S"
    local child; child=$(child_of "$server")
    local rss0; rss0=$(rss_kib "$server")
    log "$viewers viewer(s), ${WARMUP_S} s warmup + ${DURATION_S} s"
    local run=$WORK/load-$viewers.json tab=$WORK/tab-$viewers.json
    timeout $((WARMUP_S + DURATION_S + 60)) "$CAMLOOP" load --whep "$base/whep" --viewers "$viewers" \
        --warmup "$WARMUP_S" --duration "$DURATION_S" --server-pid "$server" --json \
        >"$run" 2>"$run.err" &
    local client=$!; PIDS+=("$client")
    sleep "$WARMUP_S"
    local p0 c0 s0 t0; p0=$(state_field "$base" webrtc_packets_sent); s0=$(cpu_ticks "$server")
    c0=$(cpu_ticks "$child" 2>/dev/null || echo 0); t0=$(now_s)
    sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
    local rss; rss=$(rss_kib "$server")
    sleep "$(awk -v d="$DURATION_S" 'BEGIN { print d / 2 }')"
    local p1 c1 s1 t1; p1=$(state_field "$base" webrtc_packets_sent); s1=$(cpu_ticks "$server")
    c1=$(cpu_ticks "$child" 2>/dev/null || echo 0); t1=$(now_s)
    wait "$client" || log "camloop load failed ($viewers): $(head -c 300 "$run.err")"
    local send_age idr_send_age
    send_age=$(state_field "$base" frame_send_age_us_p99); idr_send_age=$(state_field "$base" idr_send_age_us_p99)
    local dropped_server; dropped_server=$(state_field "$base" webrtc_packets_dropped)
    # Then N viewers again (a second load run), and beside them, once they
    # all play: JOINERS viewers joining one at a time (the time to the
    # first picture of a viewer that joins a camera N others watch, where
    # the first run's figure is N joining at once), then the tab, in a
    # window of its own: Chromium decoding 720p in software takes most of
    # a core, which would otherwise be in the server's figures.
    local tab_s=0; [[ $TAB == 1 ]] && tab_s=$DURATION_S
    log "beside $viewers viewer(s): $JOINERS joining one at a time$([[ $TAB == 1 ]] && echo ", then the tab for ${DURATION_S} s")"
    timeout $((WARMUP_S + 3 * JOINERS + tab_s + 60)) "$CAMLOOP" load --whep "$base/whep" --viewers "$viewers" \
        --warmup 0 --duration $((WARMUP_S + 3 * JOINERS + tab_s + 2)) >/dev/null 2>"$WORK/beside-$viewers.err" &
    local beside=$!; PIDS+=("$beside")
    sleep "$WARMUP_S"
    local joined=() joiner
    for joiner in $(seq "$JOINERS"); do
        timeout 30 "$CAMLOOP" load --whep "$base/whep" --viewers 1 --warmup 0 --duration 1 --json \
            >"$WORK/join-$viewers-$joiner.json" 2>>"$WORK/join.err" || true
        joined+=("$(jf "$WORK/join-$viewers-$joiner.json" first_picture_p50_us)")
    done
    local join_p50 join_max
    join_p50=$(printf '%s\n' "${joined[@]}" | grep -v n/a | sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.1f", a[int((NR + 1) / 2)] / 1000; else print "n/a" }')
    join_max=$(printf '%s\n' "${joined[@]}" | grep -v n/a | sort -n | awk '{ m = $1 } END { if (NR) printf "%.1f", m / 1000; else print "n/a" }')
    if [[ $TAB == 1 ]]; then
        timeout $((DURATION_S + 60)) node benches/webrtc_tab.mjs "$base" "$DURATION_S" >"$tab" 2>"$tab.err" \
            || log "the tab failed: $(head -c 300 "$tab.err")"
    fi
    wait "$beside" || log "camloop load beside the joiners failed ($viewers): $(head -c 300 "$WORK/beside-$viewers.err")"
    stop "$keeper"; stop "$server"; [[ -n $child ]] && stop "$child"
    local window; window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

    local f=$run
    local mean min stalled dropped errors nacks plis kdrops mbps server_cpu child_cpu client_cpu
    mean=$(jf "$f" fps_per_viewer_mean); min=$(jf "$f" fps_per_viewer_min)
    stalled=$(jf "$f" stalled_viewers); dropped=$(jf "$f" dropped_viewers); errors=$(jf "$f" errors)
    nacks=$(jf "$f" nacks_sent); plis=$(jf "$f" keyframe_requests_sent); kdrops=$(jf "$f" kernel_drops)
    mbps=$(jf "$f" bytes_per_s); [[ $mbps != n/a ]] && mbps=$(awk -v b="$mbps" 'BEGIN { printf "%.2f", b / 1e6 }')
    server_cpu=$(jf "$f" server_cpu_percent)
    [[ $server_cpu == n/a ]] && server_cpu=$(percent_over "$((s1 - s0))" "$window")
    child_cpu=$(percent_over "$((c1 - c0))" "$window")
    client_cpu=$(jf "$f" tool_cpu_percent)
    local packets=$((p1 - p0)) per_packet per_peer rss_mib
    per_packet=$(awk -v t="$((s1 - s0))" -v hz="$HZ" -v p="$packets" 'BEGIN { if (p > 0) printf "%.2f", 1e6 * t / hz / p; else print "n/a" }')
    rss_mib=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
    per_peer=$(awk -v a="$rss0" -v b="$rss" -v n="$viewers" 'BEGIN { printf "%.0f", (b - a) / n }')
    local age age_idr age_non_idr first_p50 first_max first_n
    age=$(jf "$f" frame_age_p99_us); age_idr=$(jf "$f" frame_age_idr_p99_us); age_non_idr=$(jf "$f" frame_age_non_idr_p99_us)
    first_p50=$(ms "$(jf "$f" first_picture_p50_us)"); first_max=$(ms "$(jf "$f" first_picture_max_us)")
    first_n=$(jf "$f" first_pictures)
    local tab_p50=n/a tab_p99=n/a tab_jb=n/a tab_frames=n/a
    if [[ -s $tab ]]; then
        tab_p50=$(ms2 "$(jf "$tab" age_p50_ms)"); tab_p99=$(ms2 "$(jf "$tab" age_p99_ms)")
        tab_jb=$(ms2 "$(jf "$tab" jitter_buffer_ms)"); tab_frames=$(jf "$tab" frames_decoded)
    fi
    local first_error; first_error=$(sed -n 's/.*"first_error":"\([^"]*\)".*/\1/p' "$f")
    ROWS+=("| $viewers | $mean | $min | $stalled | $dropped | $errors | $nacks | $plis | $kdrops | ${dropped_server:-n/a} | $mbps | $server_cpu | $child_cpu | $client_cpu | $packets | $per_packet | $rss_mib | $per_peer | $age | $age_idr | $age_non_idr | ${send_age:-n/a} | ${idr_send_age:-n/a} | $first_n | $first_p50 | $first_max | $join_p50 | $join_max | $tab_p50 | $tab_p99 | $tab_jb | $tab_frames |")
    R[$viewers,min]=$min; R[$viewers,cpu]=$server_cpu; R[$viewers,send_age]=${send_age:-n/a}
    R[$viewers,first_p50]=$first_p50; R[$viewers,join_p50]=$join_p50; R[$viewers,per_peer]=$per_peer; R[$viewers,per_packet]=$per_packet
    R[$viewers,stalled]=$stalled; R[$viewers,dropped]=$dropped
    if [[ -z ${R[dropped_at]:-} ]] && awk -v m="$min" -v f="$FPS" -v r="$DROP_RATIO" \
        'BEGIN { exit !(m == "n/a" || m < f * r) }'; then
        R[dropped_at]=$viewers
        R[verdict]=$(awk -v s="$server_cpu" -v c="$client_cpu" -v k="$kdrops" -v busy="$BUSY_CPU_PERCENT" -v e="$first_error" 'BEGIN {
            if (s >= busy) print "the server'"'"'s CPU (" s " % of a core)"
            else if (c >= busy) print "the client'"'"'s CPU (" c " % of a core; kernel drops on its sockets: " k ")"
            else if (k > 0) print "the client'"'"'s socket buffers (" k " datagrams dropped by its kernel; client " c " %)"
            else print "none of the server (" s " %), the client (" c " %) or the client'"'"'s buffers; first error: " e
        }')
    fi
    sleep 1
}

for viewers in $COUNTS; do measure "$viewers"; done

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
chromium_version=$(/usr/bin/chromium --version 2>/dev/null | head -n 1 || echo '?')
cat <<EOF
# WebRTC fan-out: camloop's WHEP peers, 1280x720 / $FPS fps / 2 Mbit/s H.264

- command: \`COUNTS="$COUNTS" DURATION_S=$DURATION_S WARMUP_S=$WARMUP_S SETTLE_S=$SETTLE_S TAB=$TAB JOINERS=$JOINERS benches/webrtc_viewers.sh\`
- camloop: \`camloop serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --webrtc 127.0.0.1:0 --webrtc-max-peers N+4 --camera 'exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i CLIP.mkv -c copy -f h264 -' --fps $FPS\`, release build without default features, camloop $(git rev-parse --short HEAD 2>/dev/null || echo '?'); a fresh server per row, a curl reading /stream.h264 as keeper from ${SETTLE_S} s before the load
- clip: \`ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=$FPS -t $CLIP_S -c:v libx264 -preset ultrafast -tune zerolatency -g $FPS -b:v 2M -maxrate 2M -bufsize 1M -pix_fmt yuv420p CLIP.mkv\`
- viewers: \`camloop load --whep URL/whep --viewers N --warmup $WARMUP_S --duration $DURATION_S --server-pid PID --json\` (run as uid $(id -u): $( [[ $(id -u) == 0 ]] && echo "socket buffers forced to 2 MiB" || echo "socket buffers capped by rmem_max")); the tab: \`node benches/webrtc_tab.mjs URL $DURATION_S\` ($chromium_version) in a window of its own right after the measured one, beside a second \`camloop load --whep\` of N viewers, so that its decoding is not in the server's figures
- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), shared with other work (expect noise); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)
- date: $(date -u '+%Y-%m-%d %H:%M UTC')

CPU % is over the measured window (100 = one core). Packets: datagrams the server sent in the window (/state \`webrtc_packets_sent\`), CPU per packet = server CPU time / packets. Memory per peer = (RSS mid-window - RSS before the load) / viewers, in KiB. Client frame age: arrival - abs-capture-time (wall clock). \`frame_send_age_us_p99\` / \`idr_send_age_us_p99\`: the server's own, over the row's server life. First picture: the offer's connect -> the first IDR complete; N at once: the measured run's viewers, all joining together; joining beside N: $JOINERS single viewers joining one after another while N others watch. Tab: one Chromium tab's capture -> render age (getSynchronizationSources) and jitterBufferDelay / jitterBufferEmittedCount.

| viewers | fps per viewer (mean) | fps (min) | stalled | dropped | errors | NACKs sent | PLI/FIR sent | client kernel drops | server packets dropped | MB/s (all) | server CPU % | camera child CPU % | client CPU % | packets sent (window) | server CPU µs per packet | RSS MiB | memory per peer KiB | frame age p99 µs (client, all) | IDR | non-IDR | frame_send_age_us_p99 (server) | idr_send_age_us_p99 | viewers with a picture | first picture p50 ms (N at once) | max ms | first picture joining beside N, p50 ms | max ms | tab capture→render p50 ms | p99 ms | tab jitter buffer ms | tab frames decoded |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${ROWS[@]}"
echo
v() { echo "${R[$1]:-n/a}"; }
echo "## Targets"
echo
last=$(awk '{ print $NF }' <<<"$COUNTS")
pass() { [[ $1 == yes ]] && echo PASS || echo FAIL; }
ok=$(awk -v m="$(v "$last,min")" -v f="$FPS" -v r="$DROP_RATIO" 'BEGIN { print (m != "n/a" && m >= f * r) ? "yes" : "no" }')
[[ $(v "$last,stalled") != 0 || $(v "$last,dropped") != 0 ]] && ok=no
echo "- $last viewers at full rate (slowest ≥ $DROP_RATIO × $FPS fps, none stalled or dropped): slowest $(v "$last,min") fps, stalled $(v "$last,stalled"), dropped $(v "$last,dropped") → **$(pass "$ok")**"
c=$(v "$last,cpu")
echo "- server under one core at $last viewers (aim 15 %; the prototype 23 %): $c % → **$(awk -v c="$c" 'BEGIN { print (c == "n/a") ? "n/a" : (c < 100 ? "PASS" : "FAIL") }')** (aim 15 %: $(awk -v c="$c" 'BEGIN { print (c == "n/a") ? "n/a" : (c <= 15 ? "met" : "not met") }')); CPU per packet $(v "$last,per_packet") µs"
if [[ " $COUNTS " == *" 10 "* ]]; then
    s=$(v 10,send_age)
    echo "- \`frame_send_age\` p99 < 2 ms at 10 viewers, non-IDR AUs: \`frame_send_age_us_p99\` = $s µs → **$(awk -v s="$s" 'BEGIN { print (s == "n/a") ? "n/a" : (s < 2000 ? "PASS" : "FAIL") }')**"
fi
p50s=""; ok=yes; joins=""; join_ok=yes
for n in $COUNTS; do
    p=$(v "$n,first_p50"); p50s+="$n: $p ms; "
    awk -v p="$p" 'BEGIN { exit !(p == "n/a" || p >= 150) }' && ok=no
    p=$(v "$n,join_p50"); joins+="beside $n: $p ms; "
    awk -v p="$p" 'BEGIN { exit !(p == "n/a" || p >= 150) }' && join_ok=no
done
echo "- time to first picture p50 < 150 ms (GOP cache), a viewer joining a camera others watch: ${joins%; } → **$(pass "$join_ok")**"
echo "- the same with N viewers joining at once, reported beside it: ${p50s%; } ($([[ $ok == yes ]] && echo "all under 150 ms" || echo "not all under 150 ms: each join costs the server a few milliseconds of its own (a str0m session with an OpenSSL DTLS context, the offer parsed, a DTLS handshake), and joins that come together queue behind each other"))"
worst=0
for n in $COUNTS; do
    [[ $n -ge 10 ]] || continue
    worst=$(awk -v a="$worst" -v b="$(v "$n,per_peer")" 'BEGIN { print (b > a) ? b : a }')
done
echo "- memory per peer < 1 MiB (1024 KiB), rows of 10 viewers or more: worst $worst KiB → **$(awk -v w="$worst" 'BEGIN { print (w < 1024) ? "PASS" : "FAIL" }')**"
echo
echo "## Where the rate first drops"
echo
if [[ -n ${R[dropped_at]:-} ]]; then
    echo "- the slowest viewer first falls below $DROP_RATIO × $FPS fps at **$(v dropped_at)** viewers; ran out: $(v verdict)"
else
    echo "- every viewer at ≥ $DROP_RATIO × $FPS fps in every row measured ($COUNTS)"
fi
