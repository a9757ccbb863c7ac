#!/usr/bin/env bash
# benches/h264_camera.sh: what an H.264 camera costs, passed through versus
# transcoded to MJPEG (issue 26).
#
#   benches/h264_camera.sh > benches/results/h264_camera.md
#
# A 1280x720 / 30 fps / 2 Mbit/s H.264 clip (x264 ultrafast, zerolatency,
# an IDR every 30 frames) is replayed in real time by an `exec:` ffmpeg
# child, one `camloop serve` per row on 127.0.0.1:
#
# - passthrough: `ffmpeg -re -stream_loop -1 -i CLIP -c copy -f h264 -`,
#   camloop splits the Annex-B into access units (the codec detected from
#   the first bytes), with 0 and 10 `/stream.h264` viewers;
# - transcode (`--camera-codec mjpeg`): `ffmpeg -re -stream_loop -1 -i CLIP
#   -f mjpeg -q:v 5 -`, what today's `rtsp://` path costs, with 0 and 10
#   `/stream.mjpg` viewers;
# - the GOP cache at its bound: an 8 Mbit/s clip with one IDR every 12 s,
#   so the cache reaches --gop-cache-bytes (4 MiB) and stays there; 0 viewers.
#
# Per row, over a DURATION_S window after WARMUP_S (the cache row waits
# until 6 s):
# - camloop's and its child's CPU, % of one core (user + system ticks from
#   /proc/PID/stat across the window; the child found by its parent pid);
# - access units (or JPEG frames) per second and bytes out per second: the
#   deltas of `frames_grabbed` and `bytes_out` from the control port's
#   `stats`;
# - the AU-complete delay (the read that brought an AU's last byte to the
#   read that showed it complete: Annex-B has no lengths, the next AU's
#   start ends it): p50 and p99 interpolated in the window's part of
#   `/metrics`' `camloop_au_complete_delay_seconds` histogram (so only as
#   fine as its buckets), and the server's own `au_complete_delay_us_p99`;
# - camloop's RSS and RssAnon at the end of the window, and `gop_frames`.
#
# Viewers are `curl -s -N -o /dev/null --max-time …`: they read as fast as
# loopback allows and stop by themselves. Environment: DURATION_S (10),
# WARMUP_S (3), CAMLOOP (a binary to use instead of building one). A smoke
# run that only checks the script:
#
#   DURATION_S=2 WARMUP_S=1 CAMLOOP=$CARGO_TARGET_DIR/debug/camloop benches/h264_camera.sh
#
# Needs ffmpeg (libx264) and curl (scripts/setup.sh test). About 75 s. Only
# 127.0.0.1 is contacted; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION_S=${DURATION_S:-10}
WARMUP_S=${WARMUP_S:-3}
CACHE_WARMUP_S=6               # 8 Mbit/s fills the 4 MiB cache in ~4.2 s
VIEWERS=10
TARGET_DIR=${CARGO_TARGET_DIR:-target}
HZ=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/camloop-h264-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "h264_camera: $*" >&2; }
. benches/proc.sh  # cpu_ticks, rss_kib, listening_ports

for tool in ffmpeg curl; do
    command -v "$tool" >/dev/null || { log "$tool is needed (scripts/setup.sh test)"; exit 1; }
done
if [[ -z ${CAMLOOP:-} ]]; then
    log "building (cargo build --release --no-default-features --bin camloop)"
    cargo build --release --no-default-features --quiet --bin camloop
    CAMLOOP=$TARGET_DIR/release/camloop
fi

# Matroska, because ffmpeg cannot loop a raw .h264 file (-stream_loop needs
# a seek its raw demuxer refuses); -c copy -f h264 writes Annex-B again.
log "encoding the clips"
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -b:v 2M "$WORK/clip.mkv"
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 24 \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 360 -b:v 8M "$WORK/long_gop.mkv"
replay() { echo "exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $1 $2 -"; }
PASSTHROUGH=$(replay "$WORK/clip.mkv" "-c copy -f h264")
TRANSCODE=$(replay "$WORK/clip.mkv" "-f mjpeg -q:v 5")
LONG_GOP=$(replay "$WORK/long_gop.mkv" "-c copy -f h264")

# stat KEY LINE: the value of KEY in a `stats` line, or n/a.
stat() { local v; v=$(tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"); echo "${v:-n/a}"; }
# percent_of_core TICKS: CPU ticks over the window as % of one core.
percent_of_core() { awk -v t="$1" -v hz="$HZ" -v d="$DURATION_S" 'BEGIN { printf "%.1f %%", 100 * t / hz / d }'; }
# The first child of process $1 (the camera's ffmpeg), from /proc.
child_of() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(sed 's/.*) //' "$p/stat" 2>/dev/null | awk '{ print $2 }') == "$1" ]] && { basename "$p"; return; }
    done
    return 0
}
# The AU-complete histogram's buckets from a /metrics text: "le count" lines.
delay_buckets() { sed -n 's/^camloop_au_complete_delay_seconds_bucket{camera="[^"]*",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p' "$1"; }
# quantiles BEFORE AFTER: "p50 p99" in ms of the histogram's growth between
# two /metrics texts, linearly interpolated inside a bucket as Prometheus'
# histogram_quantile does; n/a without samples.
quantiles() {
    paste <(delay_buckets "$1") <(delay_buckets "$2") | awk '
        { le[NR] = $1; n[NR] = $4 - $2 }
        END {
            total = n[NR]
            if (total <= 0) { print "n/a n/a"; exit }
            split("0.5 0.99", qs, " ")
            for (k = 1; k <= 2; k++) {
                rank = qs[k] * total; lower = 0; below = 0
                for (i = 1; i <= NR; i++) {
                    if (n[i] >= rank) {
                        if (le[i] == "+Inf") { out = out sprintf("> %g ", lower * 1000); break }
                        width = n[i] - below
                        frac = width > 0 ? (rank - below) / width : 1
                        out = out sprintf("%.1f ", (lower + (le[i] - lower) * frac) * 1000)
                        break
                    }
                    lower = le[i]; below = n[i]
                }
            }
            print out
        }'
}

# measure NAME VIEWER_PATH(-: none) WARMUP CAMLOOP_ARGS...: one server, one row.
measure() {
    local name=$1 path=$2 warmup=$3; shift 3
    local out="$WORK/server.out" err="$WORK/server-${#PIDS[@]}.log" ctl_port="" http_port=""
    : >"$out"
    "$CAMLOOP" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp off --snapshot-dir "$WORK" \
        --camera-timeout 30 "$@" >"$out" 2>"$err" &
    local server=$!; PIDS+=("$server")
    read -r ctl_port http_port < <(listening_ports "$out") || true
    if [[ -z $ctl_port || -z $http_port ]]; then
        log "the server for '$name' did not start: $(head -c 300 "$err")"
        exit 1
    fi
    local viewers=0
    if [[ $path != - ]]; then
        viewers=$VIEWERS
        for _ in $(seq "$VIEWERS"); do
            curl -s -N -o /dev/null --max-time "$((${warmup%.*} + ${DURATION_S%.*} + 10))" \
                "http://127.0.0.1:$http_port$path" &
            PIDS+=("$!")
        done
    fi
    log "$name: $viewers viewer(s), ${warmup} s warmup + ${DURATION_S} s"
    sleep "$warmup"
    local child; child=$(child_of "$server")
    local stats0; stats0=$("$CAMLOOP" ctl "127.0.0.1:$ctl_port" stats | grep '^OK' || true)
    curl -s "http://127.0.0.1:$http_port/metrics" >"$WORK/metrics0"
    local s0 c0 c1=""; s0=$(cpu_ticks "$server"); c0=$( [[ -n $child ]] && cpu_ticks "$child" || echo "")
    sleep "$DURATION_S"
    local s1; s1=$(cpu_ticks "$server")
    [[ -n $child && -e /proc/$child ]] && c1=$(cpu_ticks "$child")
    local stats1; stats1=$("$CAMLOOP" ctl "127.0.0.1:$ctl_port" stats | grep '^OK' || true)
    curl -s "http://127.0.0.1:$http_port/metrics" >"$WORK/metrics1"
    local rss anon; rss=$(rss_kib "$server"); anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$server/status")
    local watching; watching=$(curl -s "http://127.0.0.1:$http_port/state" | sed -n 's/^{.*"stream_viewers":\([0-9]*\).*/\1/p')
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true

    local server_cpu child_cpu="n/a"
    server_cpu=$(percent_of_core "$((s1 - s0))")
    [[ -n $c0 && -n $c1 ]] && child_cpu=$(percent_of_core "$((c1 - c0))")
    local rate bytes
    rate=$(awk -v a="$(stat frames_grabbed "$stats0")" -v b="$(stat frames_grabbed "$stats1")" -v d="$DURATION_S" \
        'BEGIN { printf "%.1f", (b - a) / d }')
    bytes=$(awk -v a="$(stat bytes_out "$stats0")" -v b="$(stat bytes_out "$stats1")" -v d="$DURATION_S" \
        'BEGIN { printf "%.2f", (b - a) / d / 1e6 }')
    local p50 p99; read -r p50 p99 < <(quantiles "$WORK/metrics0" "$WORK/metrics1")
    local codec p99_server="n/a"; codec=$(stat codec "$stats1")
    if [[ $codec == h264 ]]; then
        p99_server=$(awk -v u="$(stat au_complete_delay_us_p99 "$stats1")" 'BEGIN { printf "%.1f", u / 1000 }')
    fi
    echo "| $name | $viewers (${watching:-?} seen) | $server_cpu | $child_cpu | $rate | $bytes |" \
         "$p50 | $p99 | $p99_server | $codec | $(stat gop_frames "$stats1") |" \
         "$((rss / 1024)) / $((anon / 1024)) |"
    if grep -qi "warn.*gop" "$err"; then
        log "$name: the server warned: $(grep -i -m1 "warn.*gop" "$err" | cut -c1-240)"
    fi
}

echo "command: \`benches/h264_camera.sh\` (DURATION_S=$DURATION_S, WARMUP_S=$WARMUP_S)  "
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F), $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
echo
echo "| camera: 1280x720, 30 fps, exec: ffmpeg replaying a 2 Mbit/s H.264 clip | viewers | camloop CPU | child CPU | AUs or frames /s | MB/s out | AU-complete p50 ms | p99 ms | server p99 ms | codec | gop_frames | RSS / RssAnon MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
measure "passthrough (\`-c copy -f h264\`)" - "$WARMUP_S" --camera "$PASSTHROUGH"
measure "passthrough, /stream.h264 viewers" /stream.h264 "$WARMUP_S" --camera "$PASSTHROUGH"
measure "transcode (\`--camera-codec mjpeg\`, \`-f mjpeg -q:v 5\`)" - "$WARMUP_S" \
    --camera "$TRANSCODE" --camera-codec mjpeg
measure "transcode, /stream.mjpg viewers" /stream.mjpg "$WARMUP_S" --camera "$TRANSCODE" --camera-codec mjpeg
measure "passthrough, 8 Mbit/s, IDR every 12 s: GOP cache at its 4 MiB bound" - "$CACHE_WARMUP_S" \
    --camera "$LONG_GOP"
