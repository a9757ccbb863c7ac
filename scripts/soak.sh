#!/usr/bin/env bash
# Soak test (issues 8, 20 and 32): one camloop server with four cameras, a
# fixed time of mixed clients and camera faults, then checks that nothing
# was lost, leaked or miscounted. Two runs in one invocation: without a
# token, then with `--token` (every client authenticating).
#
#   scripts/soak.sh [SECONDS]      default 600 (10 minutes) per run, >= 60
#
# The server (`camloop serve`, release build without OpenCV):
#   --camera cam0=synthetic
#   --camera 'cam1=exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i CLIP -c copy -f mjpeg -'
#            (CLIP: a 10 s MJPEG clip made first with ffmpeg; the command has no -t)
#   --camera cam2=http://127.0.0.1:UP/stream.mjpg   (an upstream camloop with a
#            synthetic camera; in the token run its URL carries the token)
#   --camera 'cam3=exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i H264CLIP -c copy -f h264 -'
#            (H264CLIP: a 10 s 640x480 15 fps libx264 clip made first, a 1 s
#            GOP, no B-frames, light noise so that no two pictures are the
#            same; its Annex-B form is what /stream.h264 is checked against)
#   --camera-timeout 3, snapshots `soak-{seq}.jpg`, --snapshot-keep 50,
#   --converter-linger 5, --rtsp, --rtsp-udp-ports 0, --webrtc 127.0.0.1:0,
#   --http-idle-timeout (the run + 60 s: the WHEP viewers keep their
#   signalling connection idle until their DELETE).
#   cam0 is served as H.264 through its encoder child (RTSP, WHEP); cam3's
#   captures go through its decoder child.
#
# Faults, each logged as a window (camera, start, end = the camera ok again):
#   - cam1's child (ffmpeg) gets `kill -9` every 60 s (first at 25 s);
#   - once (at 40 s) it is SIGSTOPped for twice --camera-timeout, then
#     SIGCONTed if it still exists (camloop kills and restarts it before);
#   - the upstream camloop is SIGSTOPped for twice --camera-timeout every
#     60 s (first at 10 s), then SIGCONTed.
#   - cam3's child (ffmpeg) gets `kill -9` every 60 s (first at 17 s), and
#     once (at 30 s) it is SIGSTOPped for twice --camera-timeout;
#   - cam0's encoder child gets `kill -9` once (at 21 s) while the RTSP and
#     WHEP viewers of cam0 use it; its window ends when converter_restarts
#     has grown and the converter is running again.
#   Each camera fault causes exactly one restart of its camera.
#
# Clients, all on loopback, all stopping by themselves at the end:
#   - control pings: `camloop load` (16 connections x 4 in flight, capped
#     at 4000 requests/s) and 200 idle connections held open (`--hold`);
#   - captures twice a second each: `c` (the default camera, cam0), and
#     `c cam0`, `c cam1`, `c cam2`;
#   - camera controls on cam0 twice a second: `set cam0 brightness V`, `get
#     cam0 brightness`, and every tenth time `controls cam0`;
#   - MJPEG viewers: three curl at full speed on /stream.mjpg and one on
#     each of /cam/cam1/ and /cam/cam2/stream.mjpg; per camera a viewer
#     reading steadily at 100 KB/s (a slow link: small reads, a small
#     receive buffer; not curl --limit-rate, see below) that records every
#     byte, and a viewer that reads a
#     little and then stops reading; `camloop load --mjpeg` viewers (10 on
#     cam0, 5 on cam1, 5 on cam2);
#   - connect/disconnect churn capped at 300 connections/s, of which one in
#     ten sends garbage to the control port and one in ten to the HTTP port;
#   - captures on cam3 too (`c cam3`, above): JPEGs through its decoder;
#   - RTSP viewers (`camloop load --rtsp`) of cam0 and cam3, over TCP and
#     over UDP: 3 per camera and transport for the whole run, and runs of 2
#     viewers for 8 s, 2 s apart, joining and leaving until 12 s before
#     the end;
#   - RTSP clients misbehaving on cam3, 4/s taking turns (soak.py
#     rtsp-rogue): garbage (random bytes, a 9 KB request line, an unknown
#     method, a `$` frame, a huge Content-Length), and sessions that play
#     (DESCRIBE, SETUP, PLAY) and vanish without TEARDOWN, by FIN or RST;
#   - /stream.h264 of cam3: a reader at full speed and one on a slow link
#     (15 KB/s, about 40 % of the stream: it falls behind and is skipped to
#     the next IDR again and again), both recording every byte with its
#     arrival time; a reader that stops reading after 16 KiB, for longer
#     than --stream-stall-timeout (10 s);
#   - WebRTC viewers (`camloop load --whep`, when the binary has it) of cam0
#     and cam3: 3 per camera for the whole run, runs of 2 for 8 s joining
#     and leaving (each ending with DELETE), and 2 on cam3 whose load is
#     killed with -9 at 8 s (peers that vanish without DELETE; cam3's
#     joining viewers wait until they are freed, so that its peer count,
#     watched every 0.5 s, says when).
#   The MJPEG clients go to the MJPEG cameras (cam0, cam1, cam2).
#   With the token: `camloop load --auth T`, `camloop ctl ... 'auth T' ...`,
#   HTTP Basic (`curl -u soak:T`, the viewers' Authorization header),
#   Digest for RTSP (the load tool and soak.py), `Authorization: Bearer T`
#   on WHEP.
#
# Checks per run (exit 1 if any fails):
#   - the server alive, no panic in its log;
#   - every `OK` capture reply names a complete, well-formed JPEG of the
#     reported size, of a frame grabbed after the request (the `ts=` of
#     camloop's JPEG comment against the time the request was started; a
#     file that answered several requests against the latest; a JPEG
#     without that comment fails) (each is copied as soon as the reply comes, since
#     `--snapshot-keep 50` removes older ones), and the snapshot directory
#     holds 50 complete ones of each camera (retention is per camera), the
#     newest capture of each among them;
#   - the server's snapshot count (summed over the cameras) is at least the
#     files the captures named: the report's "more snapshots written for
#     garbage that spelled `c`" is that difference and must not be
#     negative;
#   - no capture of the default camera (cam0) failed; `ERR camera:` from
#     cam1 and cam2 only from a request whose time overlaps one of that
#     camera's logged fault windows, any other reply a failure;
#   - RSS at the end at most 10% above RSS after warm-up (same load);
#   - as many descriptors open after the clients are gone (and the
#     converters stopped) as before they came, both counted only while
#     every camera is ok;
#   - no errors on the ping connections, and their replies are PONG (with
#     the token: authenticated); no errors on the held connections;
#   - no failed churn connects;
#   - every viewer streaming until the end; the 100 KB/s viewers' bytes
#     parse as whole JPEG parts to the last byte, X-Frame increasing; no
#     `camloop load --mjpeg` viewer dropped, no malformed part;
#   - per camera, `viewers_dropped` equals the viewers that stopped reading
#     (and each of those was closed by the server);
#   - per camera, `camera_restarts` equals the faults caused, compared once
#     every camera is ok again; every fault was recovered from;
#   - every `set`/`get`/`controls` reply reads back the value set;
#   - /stream.h264, full speed: to the end; every access unit (VCL NAL
#     units hashed, cut where first_mb_in_slice is 0) is the clip's next
#     one, wrapping, except at a gap; a gap only inside one of cam3's
#     fault windows (or 2 s after it: a restarted child starts the clip
#     over), and the AU after every gap an IDR; no AU that is not in the
#     clip;
#   - /stream.h264, slow link: the same but gaps anywhere (skip-to-IDR),
#     each followed by an IDR;
#   - the stopped /stream.h264 reader dropped (viewers_dropped of cam3,
#     in the viewers_dropped check above);
#   - RTSP/TCP viewers that stayed: no RTP sequence gap, no AU discarded,
#     each a first IDR, none dropped, no error (the load tool can only
#     count gaps, not place them in time: so none at all, faults included);
#   - RTSP/UDP viewers that stayed: sequence gaps and lost packets counted
#     (a 2-core machine drops datagrams), and a keyframe after every gap
#     within KEYFRAME_WAIT_LIMIT_US (the load tool's longest wait from a
#     gap to the next IDR, a wait still open at the end included), each a
#     first IDR, none dropped, no error;
#   - RTSP viewers joining and leaving: every run reported, each viewer a
#     first IDR, no error, none dropped;
#   - the misbehaving RTSP clients: every vanishing session got its 200s
#     and RTP before it vanished (the server kept serving);
#   - cam0's encoder: converter_restarts equals the kills;
#   - converters off within --converter-linger + 5 s once the clients are
#     gone (the time counts from when the soak saw them gone, after the
#     last one ended: an upper bound on the linger, not a lower one);
#   - WebRTC (with `load --whep`): viewers that stayed each got a first
#     picture, ICE up, none dropped, no error, gaps (`discontinuities`)
#     and kernel drops counted and a keyframe after every gap within
#     KEYFRAME_WAIT_LIMIT_US, as for RTSP/UDP; joining viewers each a first picture and
#     a DELETE answered; the vanished peers freed within 45 s of the kill
#     (cam3's peers back to the 3 that stay); every peer count back at 0
#     once every viewer has gone;
#   - the server's children back to their number before the clients
#     (converters off);
#   - with the token: requests without it are refused (HTTP, the control
#     port, RTSP DESCRIBE without credentials and with a wrong Digest,
#     while the right Digest gets 200, and a WHEP offer without a token
#     and with a wrong Bearer token);
#   - after SIGTERM the server exits 0 and no process is left in any
#     process group it made (its children's, from its log and the
#     samples); no zombie child at any sample (samples every 5 s while
#     every camera is ok).
#   loop_stall_us p99 and max go into the report with the evidence for
#   their cause, without a pass/fail threshold (a shared 2-core machine).
#
# SOAK_CAMERA_SET=cam0|cam1|cam2 runs that one camera alone, addressed the
# single-camera way (`/stream.mjpg`, `c`, `stats`), for development on a
# server without named cameras; the default (`all`) is the form above.
#
# Prints a Markdown report on stdout (progress goes to stderr), e.g.
#   scripts/soak.sh 600 > benches/results/soak.md
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-600}
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 60 ]; then
    echo "usage: scripts/soak.sh [SECONDS >= 60]" >&2
    exit 2
fi
camera_set=${SOAK_CAMERA_SET:-all}
case $camera_set in
    all) cameras=(cam0 cam1 cam2 cam3) ;;
    cam0 | cam1 | cam2 | cam3) cameras=("$camera_set") ;;
    *)
        echo "soak: SOAK_CAMERA_SET must be all, cam0, cam1, cam2 or cam3" >&2
        exit 2
        ;;
esac
# Warm-up: a tenth of the run, between 5 and 60 s.
warmup=$((duration / 10))
[ "$warmup" -lt 5 ] && warmup=5
[ "$warmup" -gt 60 ] && warmup=60

CHURN_PER_S=300
PING_RATE=4000
IDLE_CONNS=200
KEEP=50
CAMERA_TIMEOUT=3
# The longest a UDP or WebRTC viewer may wait for a keyframe after a gap
# (datagrams lost on a 2-core machine): a GOP (1 s for cam3 and for the
# encoder's output), or a camera's SIGSTOP window (twice --camera-timeout)
# and a GOP, and a second to spare.
KEYFRAME_WAIT_LIMIT_US=$(((2 * CAMERA_TIMEOUT + 2) * 1000000))
FAULT_EVERY=60
SLOW_BYTES_PER_S=100000
SAMPLE_EVERY=5
LINGER=5                # --converter-linger
STALL_TIMEOUT=10        # --stream-stall-timeout (the default)
H264_SLOW_BYTES_PER_S=15000   # about half the H.264 clip's rate
RTSP_VIEWERS=3          # per camera and transport, for the whole run
RTSP_ROGUES_PER_S=4
TOKEN=soak-token-$$

log() { echo "soak: $*" >&2; }
has_camera() { [[ " ${cameras[*]} " == *" $1 "* ]]; }
# The MJPEG clients (viewers, slow and stopped readers, load --mjpeg) go to
# the MJPEG cameras; the H.264 ones (RTSP, /stream.h264) to cam0, through
# its encoder child, and to cam3.
mjpeg_cameras=()
h264_cameras=()
for name in "${cameras[@]}"; do
    [ "$name" = cam3 ] || mjpeg_cameras+=("$name")
    case $name in cam0 | cam3) h264_cameras+=("$name") ;; esac
done

log "installing what is missing"
CAMLOOP_NO_OPENCV=1 scripts/setup.sh soak >&2
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The cameras used need no OpenCV, and this is the embedded build.
log "building release"
cargo build --release --no-default-features -q
bin="${CARGO_TARGET_DIR:-target}/release/camloop"
whep_ready=no
if "$bin" load --help 2>/dev/null | grep -q -- '--whep'; then
    whep_ready=yes
else
    log "this camloop load has no --whep: the WebRTC viewers are left out"
fi
clients_py=scripts/soak.py

top=$(mktemp -d -t camloop-soak.XXXXXX)
pids=()
server_pid=""
upstream_pid=""
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $server_pid $upstream_pid; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clip=$top/clip.avi
if has_camera cam1; then
    log "making the clip"
    ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=640x480:rate=15 -t 10 \
        -c:v mjpeg -q:v 5 -an "$clip"
fi
cam1_source="exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $clip -c copy -f mjpeg -"
# cam3: H.264, a 10 s 640x480 15 fps libx264 clip with a 1 s GOP (keyint
# 15, no scene cuts, no B-frames; light noise so that no two pictures
# encode the same, about 40 KB/s) looped by an exec: child. Its Annex-B
# form (h264clip.h264) is what the /stream.h264 recordings are checked
# against, access unit by access unit.
h264clip=$top/h264clip.mkv
if has_camera cam3; then
    log "making the H.264 clip"
    ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=640x480:rate=15,noise=alls=6:allf=t -t 10 -c:v libx264 \
        -preset ultrafast -profile:v baseline -pix_fmt yuv420p \
        -x264-params keyint=15:min-keyint=15:scenecut=0:bframes=0:aud=1 -an "$h264clip"
    ffmpeg -nostdin -loglevel error -i "$h264clip" -c copy -f h264 "$top/h264clip.h264"
fi
cam3_source="exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i $h264clip -c copy -f h264 -"

now_ms() { date +%s%3N; }
stat_value() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -n1; }
json_value() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | tr -d '"'; }
# keyframe_figures JSON: how a viewer run's gaps ended, from `load --json`.
keyframe_figures() {
    local wait_us
    wait_us=$(json_value keyframe_after_gap_max_us "$1")
    echo "$(json_value gaps_followed_by_keyframe "$1") gaps then a keyframe, $(json_value gaps_awaiting_keyframe "$1") waiting at the end, longest wait $((${wait_us:-0} / 1000)) ms"
}
# keyframes_came JSON: the run's longest wait for a keyframe after a gap
# (the open ones included) is within KEYFRAME_WAIT_LIMIT_US.
keyframes_came() {
    local wait_us
    wait_us=$(json_value keyframe_after_gap_max_us "$1")
    [ -n "$wait_us" ] && [ "$wait_us" -le "$KEYFRAME_WAIT_LIMIT_US" ]
}

# Starts `camloop serve ARGS...` in the background; sets started_pid,
# started_ctl and started_http from its listening line.
start_camloop() { # OUT LOG ARGS...
    local out=$1 err=$2 line
    shift 2
    RUST_LOG=info "$bin" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --rtsp 127.0.0.1:0 --rtsp-udp-ports 0 \
        --webrtc 127.0.0.1:0 "$@" >"$out" 2>"$err" &
    started_pid=$!
    for _ in $(seq 100); do
        grep -q '^listening' "$out" 2>/dev/null && break
        sleep 0.1
    done
    line=$(head -n1 "$out")
    started_ctl=$(sed -n 's/^listening control=\([^ ]*\) http=.*/\1/p' <<<"$line")
    started_http=$(sed -n 's/^listening control=[^ ]* http=\([^ ]*\).*/\1/p' <<<"$line")
    started_rtsp=$(sed -n 's/.* rtsp=\([^ ,]*\).*/\1/p' <<<"$line")
    started_webrtc=$(sed -n 's/.* webrtc=\([^ ,]*\).*/\1/p' <<<"$line")
    if [ -z "$started_ctl" ] || [ -z "$started_http" ]; then
        log "camloop did not start: $line"
        cat "$err" >&2
        exit 1
    fi
}

# ---------------------------------------------------------------------------
# WebRTC viewers (WHEP): called from run_soak, so they see its variables.
# whep_clients starts them with the other clients; whep_settle waits,
# once every client is gone, for the peers to be freed; whep_figures
# prints the report's load rows, whep_rows its check rows.
WHEP_VIEWERS=3      # per camera, for the whole run
WHEP_VANISH_AT=8    # s into the run: the vanishing viewers' load is killed
WHEP_FREED_IN=45    # s: by then the server must have freed their peers
# whep_ready (yes|no) is set once the binary is built: whether `camloop load --whep` exists.
whep_peers() { # NAME: the camera's WebRTC peers, connecting and connected
    local stats
    stats=$(camera_stats "$1")
    echo $(($(stat_value webrtc_peers_connecting "$stats" | grep . || echo 999) + $(stat_value webrtc_peers_connected "$stats" | grep . || echo 999)))
}
whep_clients() {
    [ "$whep_ready" = yes ] || return 0
    : >"$work/whep-vanish.txt"
    local name vanish_camera=${h264_cameras[-1]}
    for name in "${h264_cameras[@]}"; do
        "$bin" load --whep "$(cam_url "$name" whep)" --viewers "$WHEP_VIEWERS" \
            --warmup 1 --duration $((duration - 2)) "${auth_args[@]}" --json \
            >"$work/whep-$name.json" 2>"$work/whep-$name.err" &
        pids+=($!)
        (
            # On the camera with the vanishing peers, joining starts once
            # they are freed: until then its peer count must fall to the
            # viewers that stay, and nobody else's may blur that.
            if [ "$name" = "$vanish_camera" ]; then
                while [ ! -s "$work/whep-vanish.txt" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
            fi
            i=0
            while [ $(($(date +%s) + 12)) -lt "$end" ]; do
                "$bin" load --whep "$(cam_url "$name" whep)" --viewers 2 --warmup 0 --duration 8 \
                    "${auth_args[@]}" --json >"$work/whepjoin-$name-$i.json" 2>"$work/whepjoin-$name-$i.err" || true
                i=$((i + 1))
                sleep 2
            done
        ) &
        pids+=($!)
    done
    # Peers that vanish without DELETE: a load of 2 viewers killed with -9;
    # then the camera's peers watched every 0.5 s until only the viewers
    # that stay are left. Logged: CAMERA KILLED_MS FREED_MS|never PID.
    (
        "$bin" load --whep "$(cam_url "$vanish_camera" whep)" --viewers 2 --duration "$duration" \
            "${auth_args[@]}" --json >/dev/null 2>&1 &
        vanisher=$!
        sleep "$WHEP_VANISH_AT"
        peers_before=$(whep_peers "$vanish_camera")
        kill -9 "$vanisher" 2>/dev/null || true
        killed=$(now_ms)
        freed=never
        while [ $(($(now_ms) - killed)) -lt $(((WHEP_FREED_IN + 15) * 1000)) ] && [ "$(date +%s)" -lt "$end" ]; do
            if [ "$(whep_peers "$vanish_camera")" -le "$WHEP_VIEWERS" ]; then
                freed=$(now_ms)
                break
            fi
            sleep 0.5
        done
        echo "$vanish_camera $killed $freed $vanisher $peers_before" >"$work/whep-vanish.txt"
        wait "$vanisher" 2>/dev/null || true
    ) &
    pids+=($!)
}
# Every viewer has sent its DELETE or vanished by now: every peer count
# must be back at 0.
whep_settle() {
    whep_peers_left=""
    [ "$whep_ready" = yes ] || return 0
    local give_up=$(($(now_ms) + 10000)) name peers
    while :; do
        peers=0
        whep_peers_left=""
        for name in "${h264_cameras[@]}"; do
            whep_peers_left+="$name $(whep_peers "$name"); "
            peers=$((peers + $(whep_peers "$name")))
        done
        [ "$peers" = 0 ] && break
        [ "$(now_ms)" -ge "$give_up" ] && break
        sleep 0.5
    done
}
whep_figures() {
    [ "$whep_ready" = yes ] || return 0
    local name json runs=0 viewers=0 pictures=0 errors=0 deleted=0
    echo -n "| WebRTC viewers for the whole run (\`camloop load --whep\`, ${WHEP_VIEWERS} per camera${token:+, the token}) | "
    for name in "${h264_cameras[@]}"; do
        json=$work/whep-$name.json
        echo -n "$name: $(json_value frames "$json") AUs, first pictures $(json_value first_pictures "$json")/${WHEP_VIEWERS}, ICE $(json_value ice_connected "$json"), $(json_value discontinuities "$json") discontinuities, $(json_value kernel_drops "$json") kernel drops, $(json_value nacks_sent "$json") NACKs, $(json_value keyframe_requests_sent "$json") PLIs, $(json_value errors "$json") errors, $(json_value dropped_viewers "$json") dropped; "
    done
    echo "|"
    echo "| WebRTC viewers joining and leaving, and vanishing | $(whep_join_summary); vanished: $(whep_vanish_summary); peers left once everyone had gone: ${whep_peers_left} |"
}
whep_vanish_summary() {
    local camera killed freed pid before
    read -r camera killed freed pid before <<<"$(cat "$work/whep-vanish.txt")"
    whep_vanish_ok=no
    if [ -z "$killed" ]; then
        echo "no record of the kill"
    elif [ "$freed" = never ]; then
        echo "$camera: load pid $pid (2 viewers, $before peers) killed with -9 at ${WHEP_VANISH_AT} s, its peers NOT freed within $((WHEP_FREED_IN + 15)) s"
    else
        echo "$camera: load pid $pid (2 viewers, $before peers) killed with -9 at ${WHEP_VANISH_AT} s, peers back to ${WHEP_VIEWERS} after $(((freed - killed) / 1000)).$(((freed - killed) % 1000 / 100)) s"
        [ $((freed - killed)) -le $((WHEP_FREED_IN * 1000)) ] && whep_vanish_ok=yes
    fi
}
whep_join_summary() {
    local json runs=0 viewers=0 pictures=0 errors=0 deleted=0 missing=0
    for json in "$work"/whepjoin-*.json; do
        [ -e "$json" ] || continue
        runs=$((runs + 1))
        if ! grep -q '"first_pictures"' "$json"; then
            missing=$((missing + 1))
            continue
        fi
        viewers=$((viewers + 2))
        pictures=$((pictures + $(json_value first_pictures "$json")))
        deleted=$((deleted + $(json_value sessions_deleted "$json")))
        errors=$((errors + $(json_value errors "$json") + $(json_value dropped_viewers "$json")))
    done
    echo "$runs runs, $viewers viewers reported, $pictures first pictures, $deleted DELETEs answered, $errors errors or drops, $missing runs without a report"
    whep_join_ok=no
    [ "$runs" -gt 0 ] && [ "$missing" = 0 ] && [ "$pictures" = "$viewers" ] && [ "$deleted" = "$viewers" ] \
        && [ "$errors" = 0 ] && whep_join_ok=yes
}
whep_rows() {
    [ "$whep_ready" = yes ] || return 0
    local name json ok=yes figures=""
    for name in "${h264_cameras[@]}"; do
        json=$work/whep-$name.json
        figures+="$name: $(json_value frames "$json") AUs, first pictures $(json_value first_pictures "$json"), ICE $(json_value ice_connected "$json"), $(json_value discontinuities "$json") counted gaps ($(keyframe_figures "$json")), $(json_value errors "$json") errors ($(json_value whep_errors "$json") WHEP, $(json_value auth_failures "$json") auth), $(json_value dropped_viewers "$json") dropped; "
        { [ "$(json_value first_pictures "$json")" = "$WHEP_VIEWERS" ] && [ "$(json_value ice_connected "$json")" = "$WHEP_VIEWERS" ] \
            && [ "$(json_value errors "$json")" = 0 ] && [ "$(json_value dropped_viewers "$json")" = 0 ] \
            && [ "$(json_value frames "$json")" -gt 0 ] && keyframes_came "$json"; } 2>/dev/null || ok=no
    done
    row "WebRTC viewers that stayed: a first picture each, a keyframe within $((KEYFRAME_WAIT_LIMIT_US / 1000000)) s of every counted gap, none dropped, no error" "$figures" "$ok"
    local summary
    summary=$(whep_join_summary)
    whep_join_summary >/dev/null
    row "WebRTC viewers joining and leaving: every viewer a first picture and its DELETE answered, no error" "$summary" "$whep_join_ok"
    summary=$(whep_vanish_summary)
    whep_vanish_summary >/dev/null
    row "WebRTC peers that vanished without DELETE freed within ${WHEP_FREED_IN} s of their kill" "$summary" "$whep_vanish_ok"
    local left=0 word
    for word in $whep_peers_left; do [[ $word =~ ^[0-9]+\;$ ]] && left=$((left + ${word%;})); done
    row "WebRTC peers back to 0 once every viewer had gone" "$whep_peers_left" "$(yes_if "[ $left = 0 ] && [ -n '$whep_peers_left' ]")"
}

# ---------------------------------------------------------------------------
# One run: everything above, with or without the token. Prints its report
# section and adds its failed checks to `failures`.

failures=0
run_soak() { # ID LABEL TOKEN-OR-EMPTY
    local label=$2 token=$3
    local work=$top/$1
    mkdir -p "$work/snapshots" "$work/captured" "$work/upstream"
    pids=()
    local auth_args=() curl_auth=() ctl_auth=()
    if [ -n "$token" ]; then
        auth_args=(--auth "$token")
        curl_auth=(-u "soak:$token")
        ctl_auth=("auth $token")
    fi

    # --- the servers
    local upstream_url=""
    if has_camera cam2; then
        start_camloop "$work/upstream.out" "$work/upstream.log" --camera synthetic \
            --snapshot-dir "$work/upstream" ${token:+--token "$token"}
        upstream_pid=$started_pid
        upstream_url="http://${token:+soak:$token@}$started_http/stream.mjpg"
    fi
    local camera_args=()
    if [ "$camera_set" = all ]; then
        camera_args=(--camera cam0=synthetic --camera "cam1=$cam1_source" --camera "cam2=$upstream_url"
            --camera "cam3=$cam3_source")
    else
        case $camera_set in
            cam0) camera_args=(--camera synthetic) ;;
            cam1) camera_args=(--camera "$cam1_source") ;;
            cam2) camera_args=(--camera "$upstream_url") ;;
            cam3) camera_args=(--camera "$cam3_source") ;;
        esac
    fi
    local server_args=("${camera_args[@]}" --camera-timeout "$CAMERA_TIMEOUT" --converter-linger "$LINGER"
        --http-idle-timeout $((duration + 60))
        --snapshot-dir "$work/snapshots" --snapshot-name 'soak-{seq}.jpg' --snapshot-keep "$KEEP")
    [ -n "$token" ] && server_args+=(--token "$token")
    start_camloop "$work/server.out" "$work/server.log" "${server_args[@]}"
    server_pid=$started_pid
    local ctl_addr=$started_ctl http_addr=$started_http rtsp_addr=$started_rtsp webrtc_addr=$started_webrtc
    log "$label: server pid $server_pid, control $ctl_addr, http $http_addr, rtsp $rtsp_addr, webrtc $webrtc_addr, cameras ${cameras[*]}, ${duration}s (warm-up ${warmup}s)"

    # --- addressing: named cameras, or the single camera the old way
    cam_url() { # NAME FILE
        if [ "$camera_set" = all ]; then
            echo "http://$http_addr/cam/$1/$2"
        else
            echo "http://$http_addr/$2"
        fi
    }
    cam_request() { # VERB NAME [ARGS...]
        local verb=$1 name=$2
        shift 2
        if [ "$camera_set" = all ]; then
            echo "$verb $name${*:+ $*}"
        else
            echo "$verb${*:+ $*}"
        fi
    }
    # The replies to REQUESTS..., one per line, without the greeting and
    # the reply to `auth`.
    ctl() {
        local skip=1
        [ -n "$token" ] && skip=2
        { "$bin" ctl "$ctl_addr" "${ctl_auth[@]}" "$@" 2>&1 || true; } | tail -n +$((skip + 1))
    }
    server_stats() { ctl stats | sed -n 's/^OK //p'; }
    camera_stats() { ctl "$(cam_request stats "$1")" | sed -n 's/^OK //p'; }
    all_cameras_ok() {
        local name
        for name in "${cameras[@]}"; do
            [ "$(stat_value camera_ok "$(camera_stats "$name")")" = 1 ] || return 1
        done
    }
    wait_cameras_ok() { # SECONDS
        local give_up=$(($(date +%s) + $1))
        until all_cameras_ok; do
            [ "$(date +%s)" -ge "$give_up" ] && return 1
            sleep 0.2
        done
    }
    rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
    fd_count() { { ls "/proc/$server_pid/fd" 2>/dev/null || true; } | wc -l; }
    # Children of the server: PID PGID STATE, one per line.
    children() { ps -o pid=,pgid=,stat= --ppid "$server_pid" 2>/dev/null || true; }
    take_sample() { # WHEN
        local kids
        kids=$(children)
        echo "$1 $(now_ms) fds=$(fd_count) rss=$(rss_kb) children=[$(paste -sd, - <<<"$kids")]" >>"$work/samples.txt"
        awk 'NF { print $2 }' <<<"$kids" >>"$work/pgids.txt"
        awk 'NF && $3 ~ /^Z/ { print }' <<<"$kids" >>"$work/zombies.txt"
    }
    : >"$work/samples.txt"
    : >"$work/pgids.txt"
    : >"$work/zombies.txt"
    : >"$work/windows.txt"
    : >"$work/stall.txt"

    local cameras_ok_at_start=yes
    wait_cameras_ok 30 || cameras_ok_at_start=no
    local fds_before rss_start stats_start
    fds_before=$(fd_count)
    local children_before
    children_before=$(children | grep -c . || true)
    rss_start=$(rss_kb)
    take_sample start
    local sched_start ctxt_start
    sched_start=$(awk '{ print $2 }' "/proc/$server_pid/schedstat" 2>/dev/null || echo 0)
    ctxt_start=$(awk '/^nonvoluntary_ctxt_switches:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0)
    stats_start=$(server_stats)

    # --- the clients
    local start end
    start=$(date +%s)
    end=$((start + duration))

    "$bin" load "$ctl_addr" --conns 16 --pipeline 4 --rate "$PING_RATE" "${auth_args[@]}" \
        --warmup 1 --duration $((duration - 2)) --greeting bytes:7 --json \
        >"$work/load.json" 2>"$work/load.err" &
    pids+=($!)
    "$bin" load "$ctl_addr" --hold "$IDLE_CONNS" --warmup 1 --duration $((duration - 2)) \
        "${auth_args[@]}" --greeting bytes:7 --json >"$work/hold.json" 2>"$work/hold.err" &
    pids+=($!)

    # Captures: each line `START_MS END_MS REPLY`. Each OK reply's file is
    # copied at once, before retention can remove it, so that every capture
    # of the run is checked at the end, not only the newest $KEEP.
    capture_loop() { # REQUEST
        local t0 reply name
        while [ "$(date +%s)" -lt "$end" ]; do
            t0=$(now_ms)
            reply=$(ctl "$1" | tail -n1)
            echo "$t0 $(now_ms) ${reply:-NO-REPLY}"
            name=$(sed -n 's/^OK \([^ ]*\) .*/\1/p' <<<"$reply")
            if [ -n "$name" ]; then
                cp "$work/snapshots/$name" "$work/captured/" 2>/dev/null || echo "0 0 MISSING $name"
            fi
            sleep 0.5
        done
    }
    local capture_logs=("default=${cameras[0]}=$work/captures-default.txt")
    capture_loop c >"$work/captures-default.txt" &
    pids+=($!)
    if [ "$camera_set" = all ]; then
        for name in "${cameras[@]}"; do
            capture_loop "c $name" >"$work/captures-$name.txt" &
            pids+=($!)
            capture_logs+=("$name=$name=$work/captures-$name.txt")
        done
    fi

    # Camera controls on cam0: what `set` answers and `get` reads back must
    # be the value set (nobody else sets it).
    if has_camera cam0; then
        (
            i=0
            while [ "$(date +%s)" -lt "$end" ]; do
                value=$((i * 7 % 101))
                requests=("$(cam_request set cam0 brightness "$value")" "$(cam_request get cam0 brightness)")
                [ $((i % 10)) = 0 ] && requests+=("$(cam_request controls cam0)")
                mapfile -t replies < <(ctl "${requests[@]}")
                [ "${replies[0]:-}" = "OK brightness=$value" ] || echo "set $value: ${replies[0]:-none}"
                [ "${replies[1]:-}" = "OK brightness=$value" ] || echo "get after $value: ${replies[1]:-none}"
                if [ ${#requests[@]} = 3 ] && [[ "${replies[2]:-}" != "OK "*"brightness=$value/0..100"* ]]; then
                    echo "controls after $value: ${replies[2]:-none}"
                fi
                echo "done $i"
                i=$((i + 1))
                sleep 0.5
            done
        ) >"$work/controls.txt" &
        pids+=($!)
    fi

    viewer() { # NAME URL OUT [curl options...]
        local name=$1 url=$2 out=$3 code=0
        shift 3
        # curl exits 28 when --max-time ends the stream: that is the plan.
        curl -s -N --max-time "$duration" "${curl_auth[@]}" "$@" -o "$out" \
            -w '%{size_download}\n' "$url" >"$work/viewer-$name.txt" || code=$?
        echo "exit $code" >>"$work/viewer-$name.txt"
    }
    local viewer_names=()
    for name in fast1 fast2 fast3; do
        viewer "$name" "http://$http_addr/stream.mjpg" /dev/null &
        pids+=($!)
        viewer_names+=("$name")
    done
    if [ "$camera_set" = all ]; then
        for name in cam1 cam2; do
            viewer "$name" "$(cam_url "$name" stream.mjpg)" /dev/null &
            pids+=($!)
            viewer_names+=("$name")
        done
    fi
    # No `curl --limit-rate 100k` any more (the soak had one before this
    # round): curl reads all its socket holds, then sleeps until its average
    # is back at the limit; once its receive buffer has grown to megabytes
    # the sleeps outlast --stream-stall-timeout and the server drops it as
    # stalled, which it cannot tell from a viewer that stopped
    # (docs/http.md). In the dry runs at 60 s that happened in 5 runs of 6,
    # and the viewers_dropped check failed with it. The 100 KB/s viewers
    # above read steadily instead, like a slow link.
    for name in "${mjpeg_cameras[@]}"; do
        python3 "$clients_py" viewer "$(cam_url "$name" stream.mjpg)" "$work/slow-$name.mjpg" \
            "$((duration - 2))" "$SLOW_BYTES_PER_S" "$token" >"$work/slow-$name.txt" 2>&1 &
        pids+=($!)
        python3 "$clients_py" stopped "$(cam_url "$name" stream.mjpg)" "$((duration - 2))" "$token" \
            >"$work/stopped-$name.txt" 2>&1 &
        pids+=($!)
    done
    local mjpeg_viewers
    for name in "${mjpeg_cameras[@]}"; do
        mjpeg_viewers=5
        [ "$name" = cam0 ] && mjpeg_viewers=10
        "$bin" load --mjpeg "$(cam_url "$name" stream.mjpg)" --viewers "$mjpeg_viewers" \
            --warmup 1 --duration $((duration - 2)) "${auth_args[@]}" --json \
            >"$work/mjpeg-$name.json" 2>"$work/mjpeg-$name.err" &
        pids+=($!)
    done

    # --- the H.264 clients
    rtsp_url() { # NAME
        if [ "$camera_set" = all ]; then
            echo "rtsp://$rtsp_addr/$1"
        else
            echo "rtsp://$rtsp_addr/"
        fi
    }
    # RTSP viewers that stay the whole run, over TCP and over UDP, and
    # viewers joining and leaving: runs of 2 viewers for 8 s, one after the
    # other with 2 s between them, until 12 s before the end.
    local transport
    for name in "${h264_cameras[@]}"; do
        for transport in tcp udp; do
            "$bin" load --rtsp "$(rtsp_url "$name")" --viewers "$RTSP_VIEWERS" --transport "$transport" \
                --warmup 1 --duration $((duration - 2)) "${auth_args[@]}" --json \
                >"$work/rtsp-$name-$transport.json" 2>"$work/rtsp-$name-$transport.err" &
            pids+=($!)
            (
                i=0
                while [ $(($(date +%s) + 12)) -lt "$end" ]; do
                    "$bin" load --rtsp "$(rtsp_url "$name")" --viewers 2 --transport "$transport" \
                        --warmup 0 --duration 8 "${auth_args[@]}" --json \
                        >"$work/rtspjoin-$name-$transport-$i.json" 2>"$work/rtspjoin-$name-$transport-$i.err" || true
                    i=$((i + 1))
                    sleep 2
                done
            ) &
            pids+=($!)
        done
    done
    # /stream.h264 of the H.264 camera: one reader as fast as it comes, one
    # on a slow link (about half the stream's rate: it falls behind and is
    # skipped to the next IDR, again and again), both recording every byte;
    # and one that stops reading for the rest of the run (longer than the
    # stall timeout): the server must drop it.
    if has_camera cam3; then
        python3 "$clients_py" h264-reader "$(cam_url cam3 stream.h264)" "$work/h264-full.h264" \
            "$((duration - 2))" 0 "$token" >"$work/h264-full.txt" 2>&1 &
        pids+=($!)
        python3 "$clients_py" h264-reader "$(cam_url cam3 stream.h264)" "$work/h264-slow.h264" \
            "$((duration - 2))" "$H264_SLOW_BYTES_PER_S" "$token" >"$work/h264-slow.txt" 2>&1 &
        pids+=($!)
        python3 "$clients_py" stopped "$(cam_url cam3 stream.h264)" "$((duration - 2))" "$token" \
            >"$work/stopped-cam3.txt" 2>&1 &
        pids+=($!)
    fi
    # RTSP clients that send garbage or vanish without TEARDOWN.
    if [ ${#h264_cameras[@]} -gt 0 ]; then
        python3 "$clients_py" rtsp-rogue "$rtsp_addr" "$(rtsp_url "${h264_cameras[-1]}" | sed 's|^rtsp://[^/]*||')" \
            "$((duration - 4))" "$RTSP_ROGUES_PER_S" "$token" >"$work/rtsp-rogue.txt" 2>&1 &
        pids+=($!)
    fi
    whep_clients

    python3 "$clients_py" churn "$ctl_addr" "$http_addr" "$duration" "$CHURN_PER_S" \
        >"$work/churn.txt" 2>&1 &
    pids+=($!)

    # --- faults, samples and measurements while it runs
    local -A expected_restarts=()
    for name in "${cameras[@]}"; do
        expected_restarts[$name]=0
    done
    local unrecovered=0
    # Waits until NAME has restarted since BEFORE and is ok again; logs the
    # window from START.
    fault_window() { # NAME BEFORE START WHAT
        local name=$1 before=$2 t0=$3 what=$4 stats give_up=$(($(date +%s) + 30))
        while :; do
            stats=$(camera_stats "$name")
            if [ "$(stat_value camera_restarts "$stats")" -gt "$before" ] 2>/dev/null \
                && [ "$(stat_value camera_ok "$stats")" = 1 ]; then
                break
            fi
            if [ "$(date +%s)" -ge "$give_up" ]; then
                unrecovered=$((unrecovered + 1))
                what+=" (NOT RECOVERED in 30 s)"
                break
            fi
            sleep 0.1
        done
        echo "$name $t0 $(now_ms) $what" >>"$work/windows.txt"
        echo "$(now_ms) $(stat_value loop_stall_us_max "$(server_stats)")" >>"$work/stall.txt"
        expected_restarts[$name]=$((expected_restarts[$name] + 1))
        log "$label: $name: $what, ok again after $(($(now_ms) - t0)) ms"
    }
    # The server's child whose command line holds PATTERN: cam1's ffmpeg
    # (its clip), cam3's (the H.264 clip), cam0's encoder (libx264).
    server_child() { # PATTERN
        ps -o pid=,args= --ppid "$server_pid" 2>/dev/null | awk -v p="$1" 'index($0, p) { print $1; exit }'
    }
    kill_child() { # NAME PATTERN
        local name=$1 before pid t0
        before=$(stat_value camera_restarts "$(camera_stats "$name")")
        pid=$(server_child "$2")
        if [ -z "$pid" ]; then
            log "$label: $name has no child to kill"
            unrecovered=$((unrecovered + 1))
            return
        fi
        t0=$(now_ms)
        kill -9 "$pid" 2>/dev/null || true
        fault_window "$name" "$before" "$t0" "kill -9 $pid"
    }
    stop_child() { # NAME PATTERN
        local name=$1 before pid t0 started
        before=$(stat_value camera_restarts "$(camera_stats "$name")")
        pid=$(server_child "$2")
        if [ -z "$pid" ]; then
            log "$label: $name has no child to stop"
            unrecovered=$((unrecovered + 1))
            return
        fi
        started=$(awk '{ print $22 }' "/proc/$pid/stat" 2>/dev/null || true)
        t0=$(now_ms)
        kill -STOP "$pid" 2>/dev/null || true
        sleep $((2 * CAMERA_TIMEOUT))
        # Only the same process (camloop has killed it by now; a new
        # process may have its pid).
        if [ "$(awk '{ print $22 }' "/proc/$pid/stat" 2>/dev/null)" = "$started" ]; then
            kill -CONT "$pid" 2>/dev/null || true
        fi
        fault_window "$name" "$before" "$t0" "SIGSTOP $pid for $((2 * CAMERA_TIMEOUT)) s"
    }
    kill_cam1() { kill_child cam1 "$clip"; }
    stop_cam1() { stop_child cam1 "$clip"; }
    kill_cam3() { kill_child cam3 "$h264clip"; }
    stop_cam3() { stop_child cam3 "$h264clip"; }
    # cam0's encoder child, in use by the RTSP viewers of cam0: its window
    # ends when converter_restarts has grown and it runs again.
    local converter_kills=0
    kill_encoder() {
        local before pid t0 stats give_up what
        before=$(stat_value converter_restarts "$(camera_stats cam0)")
        pid=$(server_child "-c:v libx264")
        if [ -z "$pid" ]; then
            log "$label: cam0 has no encoder child to kill"
            unrecovered=$((unrecovered + 1))
            return
        fi
        t0=$(now_ms)
        kill -9 "$pid" 2>/dev/null || true
        what="encoder kill -9 $pid"
        give_up=$(($(date +%s) + 30))
        while :; do
            stats=$(camera_stats cam0)
            if [ "$(stat_value converter_restarts "$stats")" -gt "$before" ] 2>/dev/null \
                && [ "$(stat_value converter "$stats")" = running ]; then
                break
            fi
            if [ "$(date +%s)" -ge "$give_up" ]; then
                unrecovered=$((unrecovered + 1))
                what+=" (NOT RECOVERED in 30 s)"
                break
            fi
            sleep 0.1
        done
        echo "cam0 $t0 $(now_ms) $what" >>"$work/windows.txt"
        converter_kills=$((converter_kills + 1))
        log "$label: cam0: $what, running again after $(($(now_ms) - t0)) ms"
    }
    stop_upstream() {
        local before t0
        before=$(stat_value camera_restarts "$(camera_stats cam2)")
        t0=$(now_ms)
        kill -STOP "$upstream_pid" 2>/dev/null || true
        sleep $((2 * CAMERA_TIMEOUT))
        kill -CONT "$upstream_pid" 2>/dev/null || true
        fault_window cam2 "$before" "$t0" "upstream SIGSTOP for $((2 * CAMERA_TIMEOUT)) s"
    }
    # The schedule: (second, fault); every fault must be over, and its
    # camera ok again, well before the last sample at duration - 4.
    local schedule=() t
    local last_fault_at=$((duration - 6 - 2 * CAMERA_TIMEOUT - 4))
    if has_camera cam2; then
        for ((t = 10; t <= last_fault_at; t += FAULT_EVERY)); do schedule+=("$t stop_upstream"); done
    fi
    if has_camera cam1; then
        for ((t = 25; t <= last_fault_at; t += FAULT_EVERY)); do schedule+=("$t kill_cam1"); done
        [ 40 -le "$last_fault_at" ] && schedule+=("40 stop_cam1")
    fi
    if has_camera cam3; then
        for ((t = 17; t <= last_fault_at; t += FAULT_EVERY)); do schedule+=("$t kill_cam3"); done
        [ 30 -le "$last_fault_at" ] && schedule+=("30 stop_cam3")
    fi
    if has_camera cam0; then
        [ 21 -le "$last_fault_at" ] && schedule+=("21 kill_encoder")
    fi
    if [ ${#schedule[@]} -gt 0 ]; then
        mapfile -t schedule < <(printf '%s\n' "${schedule[@]}" | sort -n)
    fi

    local rss_warm="" fds_warm="" stats_warm="" rss_end="" stats_end=""
    local next_fault=0 next_sample=$SAMPLE_EVERY elapsed
    while :; do
        elapsed=$(($(date +%s) - start))
        if [ "$next_fault" -lt ${#schedule[@]} ] && [ "$elapsed" -ge "${schedule[$next_fault]%% *}" ]; then
            "${schedule[$next_fault]#* }"
            next_fault=$((next_fault + 1))
            continue
        fi
        if [ -z "$rss_warm" ] && [ "$elapsed" -ge "$warmup" ]; then
            rss_warm=$(rss_kb)
            fds_warm=$(fd_count)
            stats_warm=$(server_stats)
            log "$label: warm: rss ${rss_warm} kB, ${fds_warm} fds, clients $(stat_value clients "$stats_warm")"
        fi
        # The last sample under the same load: a few seconds before the
        # clients stop.
        if [ "$elapsed" -ge $((duration - 4)) ]; then
            rss_end=$(rss_kb)
            stats_end=$(server_stats)
            log "$label: end: rss ${rss_end} kB, clients $(stat_value clients "$stats_end")"
            break
        fi
        if [ "$elapsed" -ge "$next_sample" ]; then
            all_cameras_ok && take_sample run
            next_sample=$((elapsed + SAMPLE_EVERY))
        fi
        # When the longest iteration so far grew: the report places the
        # longest one in time, next to the faults.
        echo "$(now_ms) $(stat_value loop_stall_us_max "$(server_stats)")" >>"$work/stall.txt"
        sleep 0.5
    done
    local faults_run=$next_fault

    for pid in "${pids[@]}"; do
        wait "$pid" || true
    done
    pids=()

    # Wait for the server to notice every departure: only our own ctl left.
    for _ in $(seq 100); do
        [ "$(stat_value clients "$(server_stats)")" = 1 ] && break
        sleep 0.1
    done
    local cameras_ok_after=yes
    wait_cameras_ok 30 || cameras_ok_after=no
    # Nobody needs a converter any more: each must stop after its linger.
    local clients_gone_ms converter_summary="" converters_ok=yes converter_state waited_for
    clients_gone_ms=$(now_ms)
    for name in "${cameras[@]}"; do
        while :; do
            converter_state=$(stat_value converter "$(camera_stats "$name")")
            waited_for=$(($(now_ms) - clients_gone_ms))
            [ "$converter_state" = off ] && break
            [ "$waited_for" -gt $(((LINGER + 5) * 1000)) ] && break
            sleep 0.2
        done
        converter_summary+="$name ${converter_state:-?} after $((waited_for / 1000)).$((waited_for % 1000 / 100)) s; "
        [ "$converter_state" = off ] || converters_ok=no
    done
    whep_settle
    local stats_after fds_after rss_after
    stats_after=$(server_stats)
    fds_after=$(fd_count)
    for _ in $(seq 50); do
        [ "$fds_after" -le "$fds_before" ] && break
        sleep 0.1
        fds_after=$(fd_count)
    done
    rss_after=$(rss_kb)
    local children_after
    children_after=$(children | grep -c . || true)
    take_sample after
    local -A cam_after=()
    for name in "${cameras[@]}"; do
        cam_after[$name]=$(camera_stats "$name")
    done
    local sched_end ctxt_end
    sched_end=$(awk '{ print $2 }' "/proc/$server_pid/schedstat" 2>/dev/null || echo 0)
    ctxt_end=$(awk '/^nonvoluntary_ctxt_switches:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0)
    local server_alive=yes
    kill -0 "$server_pid" 2>/dev/null || server_alive=no

    # With the token: nothing gets in without it.
    local refusals="" refused_ok=yes
    if [ -n "$token" ]; then
        local code reply
        for url in "http://$http_addr/stream.mjpg" "$(cam_url "${cameras[-1]}" snapshot.jpg)" "http://$http_addr/state"; do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
            refusals+="${url#http://"$http_addr"} $code; "
            [ "$code" = 401 ] || refused_ok=no
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -u soak:wrong "$url" || true)
            refusals+="wrong password $code; "
            [ "$code" = 401 ] || refused_ok=no
        done
        if [ ${#h264_cameras[@]} -gt 0 ]; then
            local rtsp_path
            rtsp_path=$(rtsp_url "${h264_cameras[-1]}" | sed 's|^rtsp://[^/]*||')
            code=$(python3 "$clients_py" rtsp-status "$rtsp_addr" "$rtsp_path" - 2>&1 | tail -n1)
            refusals+="RTSP DESCRIBE $code; "
            [ "$code" = 401 ] || refused_ok=no
            code=$(python3 "$clients_py" rtsp-status "$rtsp_addr" "$rtsp_path" "$token" wrong 2>&1 | tail -n1)
            refusals+="wrong Digest $code; "
            [ "$code" = 401 ] || refused_ok=no
            code=$(python3 "$clients_py" rtsp-status "$rtsp_addr" "$rtsp_path" "$token" 2>&1 | tail -n1)
            refusals+="right Digest $code; "
            [ "$code" = 200 ] || refused_ok=no
        fi
        if [ ${#h264_cameras[@]} -gt 0 ]; then
            # A WHEP offer without the token, and with a wrong one.
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/sdp' \
                --data-binary $'v=0\r\n' "$(cam_url "${h264_cameras[-1]}" whep)" || true)
            refusals+="WHEP offer $code; "
            [ "$code" = 401 ] || refused_ok=no
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/sdp' \
                -H "Authorization: Bearer ${token}x" --data-binary $'v=0\r\n' "$(cam_url "${h264_cameras[-1]}" whep)" || true)
            refusals+="wrong Bearer $code; "
            [ "$code" = 401 ] || refused_ok=no
        fi
        reply=$("$bin" ctl "$ctl_addr" ping 2>&1 | tail -n1 || true)
        refusals+="ctl ping: $reply"
        [ "$reply" = "ERR auth: required" ] || refused_ok=no
    fi

    # --- shutdown: SIGTERM, exit 0, no process left in its groups
    local exit_code=none
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -9 "$server_pid" 2>/dev/null || true
        exit_code="still running 10 s after SIGTERM"
        wait "$server_pid" 2>/dev/null || true
    else
        exit_code=0
        wait "$server_pid" || exit_code=$?
    fi
    server_pid=""
    sed -n 's/.*started child \([0-9][0-9]*\).*/\1/p' "$work/server.log" >>"$work/pgids.txt"
    local pgids left
    pgids=$(sort -un "$work/pgids.txt" | paste -sd' ' -)
    left=$(ps -e -o pgid=,pid=,stat=,comm= | awk -v groups=" $pgids " 'index(groups, " " $1 " ") { print }')
    if [ -n "$upstream_pid" ]; then
        kill -CONT "$upstream_pid" 2>/dev/null || true
        kill -TERM "$upstream_pid" 2>/dev/null || true
        wait "$upstream_pid" 2>/dev/null || true
        upstream_pid=""
    fi

    # --- checks
    local capture_check captures_ok capture_files capture_errors jpegs_checked jpegs_bad capture_loops capture_notes
    # Retention is per camera: each keeps its own newest $KEEP.
    local snapshot_totals="" name all_snapshots=0 camera_snapshots
    for name in "${cameras[@]}"; do
        camera_snapshots=$(stat_value snapshots "${cam_after[$name]}")
        snapshot_totals+="${snapshot_totals:+,}$name=$camera_snapshots"
        all_snapshots=$((all_snapshots + camera_snapshots))
    done
    capture_check=$(python3 "$clients_py" check-captures "$KEEP" "$snapshot_totals" \
        "$work/captured" "$work/snapshots" "$work/windows.txt" "${capture_logs[@]}")
    local jpegs_untimed jpegs_early
    read -r captures_ok capture_files capture_errors jpegs_checked jpegs_bad jpegs_untimed jpegs_early capture_loops capture_notes <<<"$capture_check"
    # The default loop's replies that are neither OK nor excused by a fault
    # window of its camera (cam0 has none: every non-OK reply).
    local default_failed
    default_failed=$(tr ',' '\n' <<<"$capture_loops" | sed -n 's|^default:[0-9]*/[0-9]*/||p')

    local panics
    panics=$(grep -c 'panicked' "$work/server.log" || true)
    local ping_requests ping_rate ping_p99 ping_errors ping_sample hold_connected hold_errors
    ping_requests=$(json_value requests "$work/load.json")
    ping_rate=$(json_value requests_per_s "$work/load.json")
    ping_p99=$(json_value latency_p99_us "$work/load.json")
    ping_errors=$(json_value errors "$work/load.json")
    ping_sample=$(json_value reply_sample "$work/load.json" | cut -c1-24)
    hold_connected=$(json_value connected "$work/hold.json")
    hold_errors=$(json_value errors "$work/hold.json")
    local churn_made churn_failed churn_garbage churn_error
    read -r churn_made churn_failed churn_garbage churn_error <<<"$(cat "$work/churn.txt")"

    local viewer_summary="" viewers_ok=yes bytes code
    for name in "${viewer_names[@]}"; do
        bytes=$(head -n1 "$work/viewer-$name.txt")
        code=$(sed -n 's/^exit //p' "$work/viewer-$name.txt")
        viewer_summary+="$name $((bytes / 1048576)) MiB (curl $code); "
        # 28: --max-time ended it, i.e. the server streamed until the end.
        { [ "$code" = 28 ] && [ "$bytes" -gt 0 ]; } || viewers_ok=no
    done
    local slow_summary="" slow_ok=yes slow_bytes slow_parts slow_end parts untimed total trailing problem
    for name in "${mjpeg_cameras[@]}"; do
        read -r slow_bytes slow_parts slow_end <<<"$(cat "$work/slow-$name.txt")"
        read -r parts untimed total trailing problem <<<"$(python3 "$clients_py" check-stream "$work/slow-$name.mjpg")"
        slow_summary+="$name: $((slow_bytes / 1024)) KiB, $parts parts ($untimed NO SIGNAL), ended by ${slow_end}, ${problem}; "
        viewer_summary+="$name 100 KB/s ${slow_end}; "
        [ "$slow_end" = end ] || viewers_ok=no
        { [ "$problem" = - ] && [ "$trailing" = 0 ] && [ "$parts" -gt 0 ]; } || slow_ok=no
    done
    local mjpeg_summary="" mjpeg_ok=yes errors dropped malformed stalled frames
    for name in "${mjpeg_cameras[@]}"; do
        errors=$(json_value errors "$work/mjpeg-$name.json")
        dropped=$(json_value dropped_viewers "$work/mjpeg-$name.json")
        malformed=$(json_value malformed_parts "$work/mjpeg-$name.json")
        stalled=$(json_value stalled_viewers "$work/mjpeg-$name.json")
        frames=$(json_value frames_run "$work/mjpeg-$name.json")
        mjpeg_summary+="$name: ${frames:-?} parts, ${errors:-?} errors, ${dropped:-?} dropped, ${malformed:-?} malformed, ${stalled:-?} stalled at some point; "
        [ "$errors" = 0 ] || mjpeg_ok=no
    done
    # --- H.264: the /stream.h264 recordings, against the clip
    local h264_rows=() h264_summary="" h264_ok=yes kind h264_bytes h264_end
    local aus idrs gaps outside no_idr unknown clip_aus
    if has_camera cam3; then
        for kind in full slow; do
            read -r h264_bytes h264_end <<<"$(cat "$work/h264-$kind.txt")"
            read -r aus idrs gaps outside no_idr unknown clip_aus problem <<<"$(python3 "$clients_py" check-h264 \
                "$top/h264clip.h264" "$work/h264-$kind.h264" "$work/windows.txt" cam3)"
            h264_summary="$((h264_bytes / 1024)) KiB, ended by ${h264_end}; ${aus} AUs (${idrs} IDRs) matched against the clip's ${clip_aus}: ${gaps} gaps, ${outside} outside cam3's fault windows, ${no_idr} not resumed on an IDR, ${unknown} AUs not in the clip; ${problem}"
            h264_ok=yes
            { [ "$h264_end" = end ] && [ "$no_idr" = 0 ] && [ "$unknown" = 0 ] && [ "$problem" = - ] \
                && [ "${aus:-0}" -gt 0 ]; } || h264_ok=no
            if [ "$kind" = full ]; then
                [ "$outside" = 0 ] || h264_ok=no
                h264_rows+=("\`/stream.h264\` reader at full speed: to the end, every AU in order outside cam3's fault windows, an IDR first after every gap|${h264_summary}|${h264_ok}")
            else
                h264_rows+=("\`/stream.h264\` reader on a slow link (${H264_SLOW_BYTES_PER_S} B/s, skipped to IDRs): to the end, an IDR first after every gap|${h264_summary}|${h264_ok}")
            fi
        done
    fi
    # --- RTSP viewers (camloop load --rtsp)
    local rtsp_figures="" rtsp_tcp_ok=yes rtsp_udp_ok=yes json v_frames v_gaps v_lost v_disc v_idrs v_rerr v_auth v_err v_drop v_malf v_kdrop
    for name in "${h264_cameras[@]}"; do
        for transport in tcp udp; do
            json=$work/rtsp-$name-$transport.json
            v_frames=$(json_value frames "$json"); v_gaps=$(json_value sequence_gaps "$json")
            v_lost=$(json_value rtp_packets_lost "$json"); v_disc=$(json_value aus_discarded "$json")
            v_idrs=$(json_value first_idrs "$json"); v_rerr=$(json_value rtsp_errors "$json")
            v_auth=$(json_value auth_failures "$json"); v_err=$(json_value errors "$json")
            v_drop=$(json_value dropped_viewers "$json"); v_malf=$(json_value malformed_rtp "$json")
            v_kdrop=$(json_value kernel_drops "$json")
            rtsp_figures+="$name/$transport: ${v_frames:-?} AUs, ${v_gaps:-?} sequence gaps, ${v_lost:-?} packets lost${v_kdrop:+ (${v_kdrop} kernel drops)}, ${v_disc:-?} AUs discarded, $(keyframe_figures "$json"), first IDR ${v_idrs:-?}/${RTSP_VIEWERS}, ${v_err:-?} errors (${v_rerr:-?} RTSP, ${v_auth:-?} auth), ${v_drop:-?} dropped, ${v_malf:-?} malformed; "
            if [ "$transport" = tcp ]; then
                { [ "$v_gaps" = 0 ] && [ "$v_disc" = 0 ] && [ "$v_idrs" = "$RTSP_VIEWERS" ] && [ "$v_err" = 0 ] \
                    && [ "$v_drop" = 0 ] && [ "$v_malf" = 0 ] && [ "${v_frames:-0}" -gt 0 ]; } || rtsp_tcp_ok=no
            else
                { [ "$v_idrs" = "$RTSP_VIEWERS" ] && [ "$v_err" = 0 ] && [ "$v_drop" = 0 ] && [ "$v_malf" = 0 ] \
                    && [ "${v_frames:-0}" -gt 0 ] && keyframes_came "$json"; } || rtsp_udp_ok=no
            fi
        done
    done
    local join_runs=0 join_viewers=0 join_idrs=0 join_errors=0 join_frames=0 join_missing=0 join_note=""
    for json in "$work"/rtspjoin-*.json; do
        [ -e "$json" ] || continue
        join_runs=$((join_runs + 1))
        if ! grep -q '"first_idrs"' "$json"; then
            join_missing=$((join_missing + 1))
            join_note+="$(basename "$json"): $(tail -n1 "${json%.json}.err"); "
            continue
        fi
        join_viewers=$((join_viewers + 2))
        join_idrs=$((join_idrs + $(json_value first_idrs "$json")))
        join_errors=$((join_errors + $(json_value errors "$json") + $(json_value dropped_viewers "$json")))
        join_frames=$((join_frames + $(json_value frames "$json")))
    done
    local rogue_garbage rogue_vanished rogue_failed rogue_error
    read -r rogue_garbage rogue_vanished rogue_failed rogue_error <<<"$(cat "$work/rtsp-rogue.txt" 2>/dev/null || echo "? ? ? no-output")"
    local dropped_summary="" dropped_ok=yes state
    for name in "${cameras[@]}"; do
        read -r state _ <<<"$(cat "$work/stopped-$name.txt")"
        dropped=$(stat_value viewers_dropped "${cam_after[$name]}")
        kind=/stream.mjpg
        [ "$name" = cam3 ] && kind=/stream.h264
        dropped_summary+="$name: viewers_dropped=${dropped:-?} for 1 stopped ${kind} reader (${state}); "
        { [ "$dropped" = 1 ] && [ "$state" = dropped ]; } || dropped_ok=no
    done
    local restart_summary="" restarts_ok=yes restarts
    for name in "${cameras[@]}"; do
        restarts=$(stat_value camera_restarts "${cam_after[$name]}")
        restart_summary+="$name: camera_restarts=${restarts:-?}, faults ${expected_restarts[$name]}; "
        [ "$restarts" = "${expected_restarts[$name]}" ] || restarts_ok=no
    done
    [ "$cameras_ok_after" = yes ] || restarts_ok=no
    local controls_done=0 controls_bad=0 controls_note="-"
    if [ -f "$work/controls.txt" ]; then
        controls_done=$(grep -c '^done ' "$work/controls.txt" || true)
        controls_bad=$(grep -vc '^done ' "$work/controls.txt" || true)
        controls_note=$(grep -v '^done ' "$work/controls.txt" | head -n3 | paste -sd';' - || true)
    fi
    local zombies
    zombies=$(sort -u "$work/zombies.txt" | paste -sd';' -)
    local samples
    samples=$(grep -c . "$work/samples.txt" || true)

    local rss_limit=$((rss_warm * 110 / 100))
    local stall_p99 stall_max
    stall_p99=$(stat_value loop_stall_us_p99 "$stats_after")
    stall_max=$(stat_value loop_stall_us_max "$stats_after")
    local stall_evidence="" name_stats longest_call=0 value
    for name in "${cameras[@]}"; do
        name_stats=${cam_after[$name]}
        stall_evidence+="$name grab_us_max=$(stat_value grab_us_max "$name_stats") camera_open_us_max=$(stat_value camera_open_us_max "$name_stats"); "
        for key in grab_us_max camera_open_us_max; do
            value=$(stat_value "$key" "$name_stats")
            [ "${value:-0}" -gt "$longest_call" ] && longest_call=$value
        done
    done
    # Between which two samples the longest iteration happened, and which
    # fault window (from its start to 1 s after its end) that overlaps.
    echo "$(now_ms) ${stall_max:-0}" >>"$work/stall.txt"
    local stall_when
    stall_when=$(awk -v max="${stall_max:-0}" -v t0="$((start * 1000))" -v windows="$work/windows.txt" '
        BEGIN { while ((getline line < windows) > 0) { split(line, w, " "); n++; ws[n] = w[2]; we[n] = w[3] + 1000; what[n] = w[1] " " substr(line, index(line, w[4])) } }
        $2 == max && !found { found = 1; from = prev; to = $1 }
        { prev = $1 }
        END {
            if (!found) { print "not placed"; exit }
            if (from == "") from = t0
            text = sprintf("it happened between %.1f s and %.1f s", (from - t0) / 1000, (to - t0) / 1000)
            hit = ""
            for (i = 1; i <= n; i++) if (from <= we[i] && ws[i] <= to) hit = hit " [" what[i] "]"
            print text (hit == "" ? ", outside every fault window" : ", overlapping the fault window" hit)
        }' "$work/stall.txt")
    local waited_ms=$(((sched_end - sched_start) / 1000000))
    local preempted=$((ctxt_end - ctxt_start))
    local stall_cause cpu_note
    cpu_note="the server waited ${waited_ms} ms in total runnable but without a CPU (schedstat), ${preempted} involuntary switches, on $(nproc) cores shared with every client of the soak, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "${stall_max:-0}" -le $((longest_call * 3 / 2)) ]; then
        stall_cause="the longest iteration is about as long as the longest camera call on the loop (${longest_call} us): a timed camera's grab or open, which runs on the loop by design; ${cpu_note}"
    elif [[ $stall_when == *overlapping* ]]; then
        stall_cause="longer than any measured camera call (${longest_call} us) and during a fault: handling it on the loop (stopping a push camera, spawning its child or connecting again; not in camera_open_us_max) or being preempted then; ${cpu_note}"
    else
        stall_cause="longer than any measured camera call (${longest_call} us) and outside the faults, so not the server's own camera work: preemption or snapshot file I/O (fsync on); ${cpu_note}"
    fi

    local whep_table
    whep_table=$(whep_figures)
    [ -n "$whep_table" ] && whep_table+=$'\n'
    row() { # CHECK RESULT OK?
        local verdict=PASS
        if [ "$3" != yes ]; then
            verdict=FAIL
            failures=$((failures + 1))
        fi
        echo "| $1 | $2 | $verdict |"
    }
    yes_if() { if eval "$1"; then echo yes; else echo no; fi; }

    cat <<EOF

## ${label}

Server: \`camloop serve ${camera_args[*]} --camera-timeout ${CAMERA_TIMEOUT} --converter-linger ${LINGER} --http-idle-timeout $((duration + 60)) --snapshot-name 'soak-{seq}.jpg' --snapshot-keep ${KEEP} --rtsp 127.0.0.1:0 --rtsp-udp-ports 0 --webrtc 127.0.0.1:0${token:+ --token T}\`, warm-up ${warmup} s, ${faults_run} faults.

| load | figures |
|---|---|
| control pings (\`camloop load\`, 16 conns x 4, capped at ${PING_RATE}/s${token:+, \`--auth T\`}) | ${ping_requests} replies, ${ping_rate} /s, p99 ${ping_p99} us, ${ping_errors} errors, first reply \`${ping_sample}\` |
| idle connections held (\`--hold ${IDLE_CONNS}\`) | ${hold_connected} connected, ${hold_errors} errors |
| captures (\`camloop ctl c\`, every 0.5 s per loop; OK/ERR camera in a fault window/other) | ${capture_loops}; ${captures_ok} OK captures named ${capture_files} snapshot files (captures waiting for one frame share its file); $(( all_snapshots - capture_files )) more snapshots written for garbage that spelled \`c\` |
| camera controls on cam0 | ${controls_done} rounds, ${controls_bad} wrong replies |
| MJPEG viewers (curl) | ${viewer_summary} |
| 100 KB/s viewers | ${slow_summary} |
| \`camloop load --mjpeg\` viewers | ${mjpeg_summary} |
| RTSP viewers for the whole run (\`camloop load --rtsp\`, ${RTSP_VIEWERS} per camera and transport${token:+, Digest}) | ${rtsp_figures} |
| RTSP viewers joining and leaving (runs of 2 viewers for 8 s, 2 s apart, per camera and transport) | ${join_runs} runs, ${join_viewers} viewers reported, ${join_idrs} first IDRs, ${join_frames} AUs, ${join_errors} errors or drops${join_note:+; not reported: ${join_note}} |
| RTSP clients misbehaving (${RTSP_ROGUES_PER_S}/s, taking turns) | ${rogue_garbage} sent garbage, ${rogue_vanished} played and vanished without TEARDOWN (half of them with a reset), ${rogue_failed} sessions failed (${rogue_error}) |
| \`/stream.h264\` of cam3 | $(for row in "${h264_rows[@]}"; do IFS='|' read -r what figures _ <<<"$row"; echo -n "${what%%:*}: ${figures}; "; done) |
${whep_table}| converters | cam0's encoder killed ${converter_kills} time(s), converter_restarts $(for name in "${h264_cameras[@]}"; do echo -n "$name=$(stat_value converter_restarts "${cam_after[$name]}") "; done); after the clients left: ${converter_summary} |
| server children | ${children_before} before the clients, ${children_after} after (converters off) |
| faults | $(awk -v t0="$((start * 1000))" '{ printf "%s at %.1f s, %s, %.1f s to ok; ", $1, ($2 - t0) / 1000, substr($0, index($0, $4)), ($3 - $2) / 1000 }' "$work/windows.txt") |
| churn (capped at ${CHURN_PER_S}/s) | ${churn_made} connections, ${churn_garbage} of them garbage, ${churn_failed} failed |
| server stats at the end | requests=$(stat_value requests "$stats_end") errors=$(stat_value errors "$stats_end") clients_peak=$(stat_value clients_peak "$stats_end") snapshots=$(stat_value snapshots "$stats_end") frames_encoded=$(stat_value frames_encoded "$stats_end") |
| memory | RSS ${rss_start} kB at start, ${rss_warm} kB after warm-up, ${rss_end} kB at the end, ${rss_after} kB after the clients left |
| descriptors (all cameras ok) | ${fds_before} before the clients, ${fds_warm} during, ${fds_after} after |
| loop_stall_us | p99 ${stall_p99}, max ${stall_max} (no threshold; ${stall_when}); ${stall_evidence}cause: ${stall_cause} |

| check | result | |
|---|---|---|
EOF
    row "server alive, no panic in its log" "alive=${server_alive}, ${panics} panics" \
        "$(yes_if "[ $server_alive = yes ] && [ $panics = 0 ]")"
    row "every OK capture is a complete JPEG of its size, of a frame grabbed after its request; ${KEEP} complete ones kept per camera" \
        "${jpegs_checked} of ${captures_ok} checked, ${jpegs_bad} problems, of them ${jpegs_early} grabbed before the request; ${jpegs_untimed} without a grab time (${capture_notes})" \
        "$(yes_if "[ $jpegs_checked = $captures_ok ] && [ $jpegs_bad = 0 ] && [ $jpegs_untimed = 0 ] && [ $captures_ok -gt 0 ]")"
    # The report's "more snapshots written for garbage" figure is this
    # difference; a negative one would mean captures named files the
    # server never counted.
    row "the server's snapshot count covers every file the captures named (the rest: garbage that spelled \`c\`)" \
        "${all_snapshots} snapshots written (${snapshot_totals}), ${capture_files} named by captures, $(( all_snapshots - capture_files )) by garbage" \
        "$(yes_if "[ $all_snapshots -ge $capture_files ] && [ $capture_files -gt 0 ]")"
    row "no capture failed (default camera ${cameras[0]})" "${default_failed} non-OK replies" "$(yes_if "[ '$default_failed' = 0 ]")"
    row "\`ERR camera:\` only inside the camera's fault windows, no other failure" "${capture_errors} other replies (${capture_loops})" \
        "$(yes_if "[ $capture_errors = 0 ]")"
    row "RSS at the end <= 110% of RSS after warm-up" "${rss_end} kB vs ${rss_warm} kB (limit ${rss_limit} kB)" \
        "$(yes_if "[ $rss_end -le $rss_limit ]")"
    row "no descriptor leaked (counted with every camera ok)" "${fds_after} after vs ${fds_before} before; cameras ok at start ${cameras_ok_at_start}, after ${cameras_ok_after}" \
        "$(yes_if "[ $fds_after = $fds_before ] && [ $cameras_ok_at_start = yes ] && [ $cameras_ok_after = yes ]")"
    row "control pings without errors, answered PONG" "${ping_errors} errors, first reply \`${ping_sample}\`" \
        "$(yes_if "[ '$ping_errors' = 0 ] && [[ '$ping_sample' == PONG* ]]")"
    row "idle connections held without errors" "${hold_connected} of ${IDLE_CONNS}, ${hold_errors} errors" \
        "$(yes_if "[ '$hold_errors' = 0 ] && [ '$hold_connected' = $IDLE_CONNS ]")"
    row "every churn connection served" "${churn_failed} failed ${churn_error}" "$(yes_if "[ '$churn_failed' = 0 ]")"
    row "every viewer streamed to the end" "$viewer_summary" "$(yes_if "[ $viewers_ok = yes ]")"
    row "the 100 KB/s viewers' bytes are whole JPEG parts to the end" "$slow_summary" "$(yes_if "[ $slow_ok = yes ]")"
    row "no \`camloop load --mjpeg\` viewer dropped, no malformed part" "$mjpeg_summary" "$(yes_if "[ $mjpeg_ok = yes ]")"
    row "viewers_dropped equals the viewers that stopped reading" "$dropped_summary" "$(yes_if "[ $dropped_ok = yes ]")"
    row "camera_restarts equals the restarts the soak caused; every fault recovered" \
        "${restart_summary}${unrecovered} not recovered; all ok after: ${cameras_ok_after}" \
        "$(yes_if "[ $restarts_ok = yes ] && [ $unrecovered = 0 ]")"
    local h264_row what figures ok
    for h264_row in "${h264_rows[@]}"; do
        IFS='|' read -r what figures ok <<<"$h264_row"
        row "$what" "$figures" "$ok"
    done
    if [ ${#h264_cameras[@]} -gt 0 ]; then
        row "RTSP/TCP viewers that stayed: every AU (no sequence gap, no AU discarded), an IDR first, none dropped, no error" \
            "$(tr ';' '\n' <<<"$rtsp_figures" | grep /tcp | paste -sd';' -)" "$rtsp_tcp_ok"
        row "RTSP/UDP viewers that stayed: gaps counted (datagrams dropped on 2 cores), a keyframe within $((KEYFRAME_WAIT_LIMIT_US / 1000000)) s of every gap, an IDR first, none dropped, no error" \
            "$(tr ';' '\n' <<<"$rtsp_figures" | grep /udp | paste -sd';' -)" "$rtsp_udp_ok"
        row "RTSP viewers joining and leaving: every run reported, every viewer an IDR, no error or drop" \
            "${join_runs} runs, ${join_idrs} IDRs for ${join_viewers} viewers, ${join_errors} errors or drops, ${join_missing} runs without a report" \
            "$(yes_if "[ $join_runs -gt 0 ] && [ $join_missing = 0 ] && [ $join_idrs = $join_viewers ] && [ $join_errors = 0 ]")"
        row "RTSP clients sending garbage or vanishing without TEARDOWN: every vanishing one played first" \
            "${rogue_garbage} garbage, ${rogue_vanished} vanished, ${rogue_failed} failed (${rogue_error})" \
            "$(yes_if "[ '$rogue_failed' = 0 ] && [ '${rogue_vanished}' -gt 0 ] 2>/dev/null")"
        row "converters stopped within ${LINGER} s of linger (+5 s) once unused" "$converter_summary" "$(yes_if "[ $converters_ok = yes ]")"
    fi
    if has_camera cam0; then
        row "cam0's encoder killed while in use: converter_restarts equals the kills, running again" \
            "${converter_kills} kills, converter_restarts=$(stat_value converter_restarts "${cam_after[cam0]}")" \
            "$(yes_if "[ $converter_kills -gt 0 ] && [ '$(stat_value converter_restarts "${cam_after[cam0]}")' = $converter_kills ]")"
    fi
    whep_rows
    row "server children back to the start's count" "${children_before} before, ${children_after} after" \
        "$(yes_if "[ $children_before = $children_after ]")"
    if has_camera cam0; then
        row "set/get/controls read back the value set" "${controls_done} rounds, ${controls_bad} wrong (${controls_note:--})" \
            "$(yes_if "[ $controls_bad = 0 ] && [ $controls_done -gt 0 ]")"
    fi
    if [ -n "$token" ]; then
        row "without the token nothing gets in" "$refusals" "$(yes_if "[ $refused_ok = yes ]")"
    fi
    row "SIGTERM: exit 0, no process left in the server's process groups" \
        "exit ${exit_code}; groups ${pgids:-none}; left: ${left:-none}" \
        "$(yes_if "[ '$exit_code' = 0 ] && [ -z '$left' ]")"
    row "no zombie child at any sample" "${samples} samples; zombies: ${zombies:-none}" \
        "$(yes_if "[ -z '$zombies' ] && [ $samples -gt 2 ]")"
    runs_done=$((runs_done + 1))
    if [ "$failures" -gt 0 ]; then
        log "$label: server log tail:"
        tail -n 20 "$work/server.log" >&2
    fi
}

cat <<EOF
# camloop soak: ${duration} s per run

\`scripts/soak.sh ${duration}\`$([ "$camera_set" = all ] || echo " with \`SOAK_CAMERA_SET=$camera_set\`") on $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ), commit \`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- src scripts 2>/dev/null || echo " with uncommitted changes").
Cameras: ${cameras[*]}. Faults every ${FAULT_EVERY} s; \`--camera-timeout ${CAMERA_TIMEOUT}\`.
EOF
# A run that stops half way (a bug of this script) must not pass: each
# run counts itself done at its very end.
runs_done=0
run_soak run1 "Run 1: without a token" ""
run_soak run2 "Run 2: with --token" "$TOKEN"
if [ "$runs_done" != 2 ]; then
    echo
    echo "**Only ${runs_done} of 2 runs got to their end (see stderr): the soak itself failed.**"
    failures=$((failures + 1))
fi
echo
if [ "$failures" -gt 0 ]; then
    echo "**${failures} check(s) failed.**"
    exit 1
fi
echo "All checks passed."
