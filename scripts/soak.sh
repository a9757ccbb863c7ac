#!/usr/bin/env bash
# Soak test (issue 8): one camloop server, a fixed time of mixed clients,
# then checks that nothing was lost or leaked.
#
#   scripts/soak.sh [SECONDS]      default 600 (10 minutes)
#
# Clients, all on loopback, all stopping by themselves at the end:
#   - control pings: `camloop load` (16 connections x 4 in flight, capped
#     at 4000 requests/s) and 200 idle connections held open (`--hold`);
#   - captures: `camloop ctl ADDR c` twice a second;
#   - MJPEG viewers: three curl at full speed, one with --limit-rate 100k;
#   - connect/disconnect churn capped at 300 connections/s, of which one in
#     ten sends garbage to the control port and one in ten to the HTTP port.
#
# Checks at the end (exit 1 if any fails): no panic in the server log;
# every `OK` capture reply names a complete, well-formed JPEG of the
# reported size (each is copied as soon as the reply comes, since
# `--snapshot-keep 50` removes older ones), and the snapshot directory
# holds 50 complete ones, the newest capture among them; RSS at the end at
# most 10% above RSS after warm-up (both under the same load); as many
# descriptors open after the clients are gone as before they came; no
# errors on the ping connections, no failed churn connects, every viewer
# streaming until the end.
#
# Prints a Markdown report on stdout (progress goes to stderr), e.g.
#   scripts/soak.sh 120 > benches/results/soak.md
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

duration=${1:-600}
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 20 ]; then
    echo "usage: scripts/soak.sh [SECONDS >= 20]" >&2
    exit 2
fi
# Warm-up: a tenth of the run, between 5 and 60 s.
warmup=$((duration / 10))
[ "$warmup" -lt 5 ] && warmup=5
[ "$warmup" -gt 60 ] && warmup=60

CHURN_PER_S=300
PING_RATE=4000
IDLE_CONNS=200
KEEP=50

log() { echo "soak: $*" >&2; }

# The synthetic camera needs no OpenCV, and this is the embedded build.
log "building release"
cargo build --release --no-default-features -q
bin="${CARGO_TARGET_DIR:-target}/release/camloop"

work=$(mktemp -d -t camloop-soak.XXXXXX)
pids=()
server_pid=""
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# The server

RUST_LOG=info "$bin" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 \
    --camera synthetic --snapshot-dir "$work/snapshots" \
    --snapshot-name 'soak-{seq}.jpg' --snapshot-keep "$KEEP" \
    >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening' "$work/server.out" 2>/dev/null && break
    sleep 0.1
done
line=$(head -n1 "$work/server.out")
ctl_addr=$(sed -n 's/^listening control=\([^ ]*\) http=.*/\1/p' <<<"$line")
http_addr=$(sed -n 's/^listening control=[^ ]* http=\(.*\)$/\1/p' <<<"$line")
if [ -z "$ctl_addr" ] || [ -z "$http_addr" ]; then
    log "server did not start: $line"
    cat "$work/server.log" >&2
    exit 1
fi
log "server pid $server_pid, control $ctl_addr, http $http_addr, ${duration}s (warm-up ${warmup}s)"

# Both print 0 once the server is gone (the checks then fail, with a report).
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
fd_count() { { ls "/proc/$server_pid/fd" 2>/dev/null || true; } | wc -l; }
stat_value() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
server_stats() { "$bin" ctl "$ctl_addr" stats | sed -n 's/^OK //p'; }

fds_before=$(fd_count)
rss_start=$(rss_kb)

# ---------------------------------------------------------------------------
# The clients

start=$(date +%s)
end=$((start + duration))

"$bin" load "$ctl_addr" --conns 16 --pipeline 4 --rate "$PING_RATE" \
    --warmup 1 --duration $((duration - 2)) --greeting bytes:7 --json \
    >"$work/load.json" 2>"$work/load.err" &
pids+=($!)
"$bin" load "$ctl_addr" --hold "$IDLE_CONNS" --warmup 1 --duration $((duration - 2)) \
    --greeting bytes:7 --json >"$work/hold.json" 2>"$work/hold.err" &
pids+=($!)

# Each OK reply's file is copied at once, before retention can remove it,
# so that every capture of the run is checked at the end, not only the
# newest $KEEP.
mkdir -p "$work/captured"
(
    while [ "$(date +%s)" -lt "$end" ]; do
        reply=$("$bin" ctl "$ctl_addr" c 2>&1) || reply+=" CTL-FAILED"
        echo "$reply"
        name=$(sed -n 's/^OK \([^ ]*\) .*/\1/p' <<<"$reply")
        if [ -n "$name" ]; then
            cp "$work/snapshots/$name" "$work/captured/" 2>/dev/null || echo "MISSING $name"
        fi
        sleep 0.5
    done
) >"$work/captures.txt" &
pids+=($!)

viewer() { # NAME [curl options...]
    local name=$1 code=0
    shift
    # curl exits 28 when --max-time ends the stream: that is the plan.
    curl -s -N --max-time "$duration" "$@" -o /dev/null \
        -w '%{size_download}\n' "http://$http_addr/stream.mjpg" >"$work/viewer-$name.txt" || code=$?
    echo "exit $code" >>"$work/viewer-$name.txt"
}
for name in fast1 fast2 fast3; do
    viewer "$name" &
    pids+=($!)
done
viewer slow --limit-rate 100k &
pids+=($!)

python3 - "$ctl_addr" "$http_addr" "$duration" "$CHURN_PER_S" >"$work/churn.txt" <<'PY' &
# Connect/disconnect churn at a capped rate; every tenth connection sends
# garbage to the control port, every tenth another one to the HTTP port.
import os, random, socket, sys, time

def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)

control, http = addr(sys.argv[1]), addr(sys.argv[2])
duration, rate = float(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + duration
made = failed = garbage = 0
next_at = time.monotonic()
first_error = ""
while time.monotonic() < deadline:
    kind = made % 10
    try:
        if kind == 8:
            with socket.create_connection(http, timeout=5) as s:
                s.sendall(random.choice([
                    b"GET /" + os.urandom(random.randint(1, 2000)) + b" HTTP/1.1\r\n\r\n",
                    os.urandom(random.randint(1, 9000)),
                    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
                ]))
            garbage += 1
        elif kind == 9:
            with socket.create_connection(control, timeout=5) as s:
                s.sendall(random.choice([
                    os.urandom(random.randint(1, 8192)),
                    b"x" * 5000 + b"\n",
                    b"\r\n\0\xff" * random.randint(1, 500),
                ]))
            garbage += 1
        else:
            with socket.create_connection(control, timeout=5) as s:
                if s.recv(7) != b"Welcome":
                    raise OSError("no Welcome")
    except OSError as e:
        failed += 1
        first_error = first_error or repr(e)
    made += 1
    next_at += 1.0 / rate
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(made, failed, garbage, first_error)
PY
pids+=($!)

# ---------------------------------------------------------------------------
# Measure while it runs

sleep "$warmup"
rss_warm=$(rss_kb)
fds_warm=$(fd_count)
stats_warm=$(server_stats)
log "warm: rss ${rss_warm} kB, ${fds_warm} fds, clients $(stat_value clients "$stats_warm")"

# The last sample under the same load: a few seconds before the clients stop.
sleep $((duration - warmup - 4))
rss_end=$(rss_kb)
stats_end=$(server_stats)
log "end: rss ${rss_end} kB, clients $(stat_value clients "$stats_end")"

for pid in "${pids[@]}"; do
    wait "$pid" || true
done
pids=()

# Wait for the server to notice every departure: only our own ctl left.
for _ in $(seq 100); do
    [ "$(stat_value clients "$(server_stats)")" = 1 ] && break
    sleep 0.1
done
stats_after=$(server_stats)
fds_after=$(fd_count)
for _ in $(seq 50); do
    [ "$fds_after" -le "$fds_before" ] && break
    sleep 0.1
    fds_after=$(fd_count)
done
rss_after=$(rss_kb)
server_alive=yes
kill -0 "$server_pid" 2>/dev/null || server_alive=no

# ---------------------------------------------------------------------------
# Checks

# Every OK capture: its copy must be a complete JPEG of the reported size.
capture_check=$(python3 - "$work/captures.txt" "$work/captured" "$work/snapshots" "$KEEP" \
    "$(stat_value snapshots "$stats_after")" <<'PY'
import os, sys

def jpeg_problem(data):
    """None for a well-formed baseline JPEG: SOI, segments up to SOS,
    entropy-coded data with only stuffed bytes and restart markers, EOI."""
    if data[:2] != b"\xff\xd8":
        return "no SOI"
    if data[-2:] != b"\xff\xd9":
        return "no EOI at the end"
    i = 2
    while True:
        if i + 4 > len(data) or data[i] != 0xFF:
            return f"bad segment at {i}"
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        i += 2 + length
        if marker == 0xDA:
            break
    scan = data[i:-2]
    j = scan.find(b"\xff")
    while j != -1:
        if j + 1 >= len(scan) or not (scan[j + 1] == 0 or 0xD0 <= scan[j + 1] <= 0xD7):
            return f"marker inside the scan at {i + j}"
        j = scan.find(b"\xff", j + 2)
    return None

captures_file, captured_dir, snapshot_dir = sys.argv[1:4]
keep, total_snapshots = int(sys.argv[4]), int(sys.argv[5])
ok, errors = [], []
for line in open(captures_file, errors="replace"):
    line = line.strip()
    if line.startswith("OK "):
        _, name, size, length = line.split()
        ok.append((name, int(length)))
    elif line and line != "Welcome":
        errors.append(line)
checked = 0
problems = []
for name, length in ok:
    path = os.path.join(captured_dir, name)
    if not os.path.exists(path):
        problems.append(f"{name}: not copied")
        continue
    data = open(path, "rb").read()
    checked += 1
    problem = jpeg_problem(data)
    if problem is None and len(data) != length:
        problem = f"{len(data)} bytes, reply said {length}"
    if problem:
        problems.append(f"{name}: {problem}")
# Random garbage can spell a capture now and then (a line that is just
# "c"), so the directory may hold snapshots nobody here asked for: check
# that it holds what retention promises, each file complete, and the newest
# capture of ours among them.
kept = sorted(os.listdir(snapshot_dir))
if len(kept) != min(keep, total_snapshots):
    problems.append(f"snapshot dir holds {len(kept)} files, not {min(keep, total_snapshots)}")
for name in kept:
    problem = jpeg_problem(open(os.path.join(snapshot_dir, name), "rb").read())
    if not name.startswith("soak-") or problem:
        problems.append(f"kept {name}: {problem or 'stray file'}")
if ok and ok[-1][0] not in kept:
    problems.append(f"the newest capture {ok[-1][0]} is not kept")
print(len(ok), len(errors), checked, len(problems),
      "; ".join(problems[:3] + errors[:3]) or "-")
PY
)
read -r captures_ok capture_errors jpegs_checked jpegs_bad capture_notes <<<"$capture_check"

panics=$(grep -c 'panicked' "$work/server.log" || true)
json_value() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2" | tr -d '"'; }
ping_requests=$(json_value requests "$work/load.json")
ping_rate=$(json_value requests_per_s "$work/load.json")
ping_p99=$(json_value latency_p99_us "$work/load.json")
ping_errors=$(json_value errors "$work/load.json")
hold_connected=$(json_value connected "$work/hold.json")
hold_errors=$(json_value errors "$work/hold.json")
read -r churn_made churn_failed churn_garbage churn_error <<<"$(cat "$work/churn.txt")"
viewer_summary=""
viewers_ok=yes
for name in fast1 fast2 fast3 slow; do
    bytes=$(head -n1 "$work/viewer-$name.txt")
    code=$(sed -n 's/^exit //p' "$work/viewer-$name.txt")
    viewer_summary+="$name $((bytes / 1048576)) MiB (curl $code); "
    # 28: --max-time ended it, i.e. the server streamed until the end.
    { [ "$code" = 28 ] && [ "$bytes" -gt 0 ]; } || viewers_ok=no
done
rss_limit=$((rss_warm * 110 / 100))

failures=0
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
# camloop soak: ${duration} s

\`scripts/soak.sh ${duration}\` on $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%dT%H:%MZ).
One release server (\`--camera synthetic --http 127.0.0.1:0 --snapshot-name 'soak-{seq}.jpg' --snapshot-keep ${KEEP}\`), warm-up ${warmup} s.

| load | figures |
|---|---|
| control pings (\`camloop load\`, 16 conns x 4, capped at ${PING_RATE}/s) | ${ping_requests} replies, ${ping_rate} /s, p99 ${ping_p99} us, ${ping_errors} errors |
| idle connections held (\`--hold ${IDLE_CONNS}\`) | ${hold_connected} connected, ${hold_errors} errors |
| captures (\`camloop ctl c\`, every 0.5 s) | ${captures_ok} OK, ${capture_errors} other replies; $(( $(stat_value snapshots "$stats_after") - captures_ok )) more snapshots written for garbage that spelled \`c\` |
| MJPEG viewers (curl: 3 full speed, 1 with \`--limit-rate 100k\`) | ${viewer_summary} |
| churn (capped at ${CHURN_PER_S}/s) | ${churn_made} connections, ${churn_garbage} of them garbage, ${churn_failed} failed |
| server stats at the end | requests=$(stat_value requests "$stats_end") errors=$(stat_value errors "$stats_end") clients_peak=$(stat_value clients_peak "$stats_end") snapshots=$(stat_value snapshots "$stats_end") frames_encoded=$(stat_value frames_encoded "$stats_end") |
| memory | RSS ${rss_start} kB at start, ${rss_warm} kB after warm-up, ${rss_end} kB at the end, ${rss_after} kB after the clients left |
| descriptors | ${fds_before} before the clients, ${fds_warm} during, ${fds_after} after |

| check | result | |
|---|---|---|
EOF
row "server alive, no panic in its log" "alive=${server_alive}, ${panics} panics" \
    "$(yes_if "[ $server_alive = yes ] && [ $panics = 0 ]")"
row "every OK capture is a complete JPEG of its size; ${KEEP} complete ones kept" \
    "${jpegs_checked} of ${captures_ok} checked, ${jpegs_bad} problems (${capture_notes})" \
    "$(yes_if "[ $jpegs_checked = $captures_ok ] && [ $jpegs_bad = 0 ] && [ $captures_ok -gt 0 ]")"
row "no capture failed" "${capture_errors} non-OK replies" "$(yes_if "[ $capture_errors = 0 ]")"
row "RSS at the end <= 110% of RSS after warm-up" "${rss_end} kB vs ${rss_warm} kB (limit ${rss_limit} kB)" \
    "$(yes_if "[ $rss_end -le $rss_limit ]")"
row "no descriptor leaked" "${fds_after} after vs ${fds_before} before" "$(yes_if "[ $fds_after = $fds_before ]")"
row "control pings without errors" "${ping_errors} errors" "$(yes_if "[ '$ping_errors' = 0 ]")"
row "idle connections held without errors" "${hold_connected} of ${IDLE_CONNS}, ${hold_errors} errors" \
    "$(yes_if "[ '$hold_errors' = 0 ] && [ '$hold_connected' = $IDLE_CONNS ]")"
row "every churn connection served" "${churn_failed} failed ${churn_error}" "$(yes_if "[ $churn_failed = 0 ]")"
row "every viewer streamed to the end" "$viewer_summary" "$(yes_if "[ $viewers_ok = yes ]")"
echo
if [ "$failures" -gt 0 ]; then
    echo "**${failures} check(s) failed.**"
    log "$failures check(s) failed; server log tail:"
    tail -n 20 "$work/server.log" >&2
    exit 1
fi
echo "All checks passed."
