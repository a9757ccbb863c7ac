#!/usr/bin/env bash
# MJPEG fan-out: 1 viewer vs 100 concurrent viewers of one camloop server.
#
#   benches/mjpeg_viewers.sh                 # prints a markdown report
#   DURATION=10 VIEWERS=100 benches/mjpeg_viewers.sh > benches/results/mjpeg_viewers.md
#
# For each build (pure-Rust JPEG without default features; OpenCV encoder
# with them, when it builds) it starts one `camloop serve --camera synthetic
# --fps 30` on 127.0.0.1 and, in that same run, measures two phases of
# DURATION seconds each (after WARMUP seconds): 1 viewer, then VIEWERS
# viewers. Per phase it reports frames delivered per viewer per second,
# server CPU % (utime+stime from /proc/PID/stat, 100 % = one core), VmRSS,
# and grabs/encodes per second from /state: encodes should equal the grab
# rate whatever the number of viewers (one encode per frame, shared bytes).
#
# The viewers are one Python process (selectors, non-blocking sockets) that
# parses the multipart stream by Content-Length and counts complete parts.
# Only 127.0.0.1 is contacted; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"   # seconds measured per phase
WARMUP="${WARMUP:-2}"        # seconds of streaming before a phase is measured
VIEWERS="${VIEWERS:-100}"    # viewers in the crowded phase
FPS="${FPS:-30}"
WIDTH=640
HEIGHT=480
# Hard cap for one measuring client run, in case a server stops answering.
CLIENT_LIMIT=$((2 * (WARMUP + DURATION) + 30))

work="$(mktemp -d /tmp/camloop-bench.XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ build

echo "building release binaries..." >&2
builds=()
note=""
cargo build --release --no-default-features >&2
cp target/release/camloop "$work/camloop-pure-rust"
builds+=("pure-rust")
if ! cargo build --release >&2; then
    note="The default-features (OpenCV) build failed here; only the pure-Rust build was measured."
elif ! ldd target/release/camloop | grep -q libopencv; then
    # The feature exists but no code in this tree uses OpenCV yet, so the
    # binary is the pure-Rust one again; measuring it twice says nothing.
    note="The default-features build does not link OpenCV in this tree (no code uses the feature yet), so it encodes with the same pure-Rust encoder and was not measured separately."
else
    cp target/release/camloop "$work/camloop-opencv"
    builds+=("opencv")
fi
[ -n "$note" ] && echo "$note" >&2

# ----------------------------------------------------------- the viewers

cat > "$work/viewers.py" <<'PYTHON'
"""Runs the phases against one server and prints one JSON object per phase.

usage: viewers.py HOST PORT SERVER_PID WARMUP DURATION VIEWERS...
"""
import json
import os
import selectors
import socket
import sys
import time

BOUNDARY_LINE = b"--camloopframe"
HEAD_END = b"\r\n\r\n"
MAX_HEAD = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Viewer:
    """One /stream.mjpg connection; counts complete parts."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
        self.sock.setblocking(False)
        self.head = b""          # an unfinished response or part head
        self.in_response = False  # the response head has been read
        self.skip = 0            # body bytes (plus CRLF) still to skip
        self.parts = 0
        self.closed = False

    def feed(self, data):
        pos = 0
        while pos < len(data):
            if self.skip:
                taken = min(self.skip, len(data) - pos)
                pos += taken
                self.skip -= taken
                if self.skip == 0:
                    self.parts += 1
                continue
            window = data[pos:pos + MAX_HEAD]
            joined = self.head + window
            end = joined.find(HEAD_END)
            if end < 0:
                if len(joined) > MAX_HEAD:
                    raise ValueError("head too long: %r" % joined[:200])
                self.head = joined
                pos += len(window)
                continue
            pos += end + len(HEAD_END) - len(self.head)
            head, self.head = joined[:end], b""
            if not self.in_response:
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ValueError("bad response head: %r" % head[:200])
                self.in_response = True
                continue
            lines = head.split(b"\r\n")
            if lines[0] != BOUNDARY_LINE:
                raise ValueError("bad part head: %r" % head[:200])
            length = next(int(line.split(b":", 1)[1]) for line in lines
                          if line.lower().startswith(b"content-length:"))
            self.skip = length + 2  # the JPEG and the CRLF after it


def http_get_json(host, port, path):
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                     % path.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data.split(HEAD_END, 1)[1])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS")


def pump(selector, until):
    while (left := until - time.monotonic()) > 0:
        for key, _ in selector.select(timeout=min(left, 0.1)):
            viewer = key.data
            try:
                data = viewer.sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                viewer.closed = True
                selector.unregister(viewer.sock)
                continue
            viewer.feed(data)


def phase(host, port, pid, warmup, duration, count):
    selector = selectors.DefaultSelector()
    viewers = [Viewer(host, port) for _ in range(count)]
    for viewer in viewers:
        selector.register(viewer.sock, selectors.EVENT_READ, viewer)
    pump(selector, time.monotonic() + warmup)

    state0, cpu0, client0 = http_get_json(host, port, "/state"), cpu_seconds(pid), os.times()
    parts0 = [v.parts for v in viewers]
    t0 = time.monotonic()
    pump(selector, t0 + duration)
    t1 = time.monotonic()
    parts1 = [v.parts for v in viewers]
    state1, cpu1, client1 = http_get_json(host, port, "/state"), cpu_seconds(pid), os.times()
    rss = rss_kib(pid)
    for viewer in viewers:
        viewer.sock.close()
    selector.close()

    wall = t1 - t0
    per_viewer = [(b - a) / wall for a, b in zip(parts0, parts1)]
    rate = lambda key: (state1[key] - state0[key]) / wall
    return {
        "viewers": count,
        "seconds": round(wall, 2),
        "fps_per_viewer_mean": sum(per_viewer) / count,
        "fps_per_viewer_min": min(per_viewer),
        "fps_per_viewer_max": max(per_viewer),
        "viewers_closed": sum(v.closed for v in viewers),
        "server_cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "server_rss_kib": rss,
        "grabs_per_s": rate("frames_grabbed"),
        "encodes_per_s": rate("frames_encoded"),
        "sent_per_s": rate("frames_sent"),
        "skipped_per_s": rate("frames_dropped"),
        "viewers_dropped": state1["viewers_dropped"] - state0["viewers_dropped"],
        "mbit_per_s": 8 * (state1["bytes_out"] - state0["bytes_out"]) / wall / 1e6,
        "client_cpu_percent": 100 * ((client1.user + client1.system)
                                     - (client0.user + client0.system)) / wall,
    }


def main():
    host, port, pid, warmup, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        float(sys.argv[4]), float(sys.argv[5])
    for count in map(int, sys.argv[6:]):
        print(json.dumps(phase(host, port, pid, warmup, duration, count)), flush=True)
        time.sleep(1)  # let the server notice the closed viewers


main()
PYTHON

# ------------------------------------------------------------- measuring

# Starts a server with binary $1, runs both phases, appends JSON lines
# (tagged with the build name) to $work/results.jsonl.
measure() {
    local build="$1" binary="$work/camloop-$1" port=""
    "$binary" serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --camera synthetic \
        --fps "$FPS" --width "$WIDTH" --height "$HEIGHT" --snapshot-dir "$work/snapshots" \
        > "$work/server.out" 2> "$work/server-$build.log" &
    server_pid=$!
    for _ in $(seq 50); do
        port="$(sed -n 's/.*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.out")"
        [ -n "$port" ] && break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "server ($build) did not start:" >&2
        cat "$work/server-$build.log" >&2
        exit 1
    fi
    echo "measuring $build: 1 then $VIEWERS viewers, ${DURATION} s each..." >&2
    timeout "$CLIENT_LIMIT" python3 "$work/viewers.py" 127.0.0.1 "$port" "$server_pid" \
        "$WARMUP" "$DURATION" 1 "$VIEWERS" |
        sed "s/^{/{\"build\": \"$build\", /" >> "$work/results.jsonl"
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

for build in "${builds[@]}"; do
    measure "$build"
done

# ---------------------------------------------------------------- report

cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
python3 - "$work/results.jsonl" <<PYTHON
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("# MJPEG fan-out: 1 viewer vs $VIEWERS viewers")
print()
print("- command: \`DURATION=$DURATION WARMUP=$WARMUP VIEWERS=$VIEWERS benches/mjpeg_viewers.sh\`")
print("- server: \`camloop serve --camera synthetic --fps $FPS --width $WIDTH --height $HEIGHT\` "
      "on 127.0.0.1, release build; one server run per build, both phases in that run")
print("- viewers: one Python process, non-blocking sockets, parts counted by Content-Length")
print("- machine: $(nproc) CPUs, $cpu_model, Linux $(uname -r)")
print("- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
note = """$note"""
if note:
    print("- note: " + note)
print()
header = ["", *("%s, %d viewer%s" % (r["build"], r["viewers"], "" if r["viewers"] == 1 else "s")
                for r in rows)]
table = [
    ("frames per viewer per s (mean)", "fps_per_viewer_mean", "%.1f"),
    ("frames per viewer per s (min / max)", None, None),
    ("server CPU % (one core = 100)", "server_cpu_percent", "%.1f"),
    ("server RSS (MiB)", "server_rss_kib", None),
    ("grabs per s", "grabs_per_s", "%.1f"),
    ("encodes per s", "encodes_per_s", "%.1f"),
    ("frames sent per s (all viewers)", "sent_per_s", "%.0f"),
    ("frames skipped per s (all viewers)", "skipped_per_s", "%.0f"),
    ("sent Mbit/s (all viewers)", "mbit_per_s", "%.0f"),
    ("viewers dropped", "viewers_dropped", "%d"),
    ("load client CPU %", "client_cpu_percent", "%.1f"),
]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for label, key, fmt in table:
    cells = []
    for r in rows:
        if label.startswith("frames per viewer per s (min"):
            cells.append("%.1f / %.1f" % (r["fps_per_viewer_min"], r["fps_per_viewer_max"]))
        elif key == "server_rss_kib":
            cells.append("%.1f" % (r[key] / 1024))
        else:
            cells.append(fmt % r[key])
    print("| " + " | ".join([label, *cells]) + " |")
PYTHON
