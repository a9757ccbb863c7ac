#!/usr/bin/env python3
"""What a converter child costs, and what it saves (issue 27).

    benches/converters.sh > benches/results/converters.md

Run by benches/converters.sh, which builds the binary and passes its path.
One `camloop serve` per row on 127.0.0.1, every camera replaying a clip
made once at the start (x264 ultrafast / zerolatency, an IDR every 30
frames, or an MJPEG clip at quality 5) in real time with `-c copy`, so the
cores are spent on what is measured:

1. Each converter while it runs, at 1280x720 and 640x480, 30 fps:
   - the decoder (H.264 camera, one `/stream.mjpg` viewer);
   - the encoder (MJPEG camera, one `/stream.h264` viewer);
   camloop's CPU and the converter child's (its `converter_cpu_us` from
   `stats`), % of one core over DURATION_S, and frames in/out per second.
2. The capture latency of an H.264 camera, request to reply (the reply
   comes once the file is in place), p50 / p99 over CAPTURES captures:
   - warm: the decoder already runs (a `/stream.mjpg` viewer keeps it);
   - cold: the decoder is off (the linger of 1 s has passed since the
     last capture), so each capture starts it.
3. What an always-on transcoder costs while nobody watches (go2rtc keeps
   one ffmpeg per stream running; camloop stops its converter
   `--converter-linger` after the last consumer): the child's CPU over
   DURATION_S with no consumer, camloop's linger against the same decoder
   kept running (here by one viewer whose frames are thrown away, which is
   what an always-on transcoder spends).

Only 127.0.0.1 is contacted; everything started here is stopped on exit.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CAMLOOP = sys.argv[1]
DURATION_S = float(os.environ.get("DURATION_S", "10"))
WARMUP_S = float(os.environ.get("WARMUP_S", "3"))
CAPTURES = int(os.environ.get("CAPTURES", "20"))
HZ = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="camloop-converters-")
STARTED = []


def make_clip(name, size, codec_args):
    path = os.path.join(WORK, name)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
         "-t", "10", *codec_args, path],
        check=True,
    )
    return path


def h264_clip(size, bitrate):
    return make_clip(f"h264-{size}.mkv", size,
                     ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                      "-g", "30", "-b:v", bitrate])


def mjpeg_clip(size):
    return make_clip(f"mjpeg-{size}.mkv", size, ["-c:v", "mjpeg", "-q:v", "5"])


def camera(clip, out_format):
    return (f"exec:ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i {clip} "
            f"-c copy -f {out_format} -")


def serve(camera_arg, linger="10"):
    snapshots = tempfile.mkdtemp(dir=WORK)
    process = subprocess.Popen(
        [CAMLOOP, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtsp", "off",
         "--snapshot-dir", snapshots, "--converter-linger", linger, "--camera", camera_arg],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    STARTED.append(process)
    line = process.stdout.readline()
    control = re.search(r"control=([0-9.:]+)", line).group(1)
    http = re.search(r"http=([0-9.:]+)", line).group(1)
    return process, control, http


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


class Control:
    """A line-mode control connection."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buffer = b""
        self.read_exact(7)  # Welcome

    def read_exact(self, n):
        while len(self.buffer) < n:
            self.buffer += self.sock.recv(65536)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def request(self, line):
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("closed")
            self.buffer += chunk
        reply, self.buffer = self.buffer.split(b"\n", 1)
        return reply.decode()

    def stats(self):
        reply = self.request("stats")
        return dict(word.split("=", 1) for word in reply.split()[1:] if "=" in word)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def viewer(http, path, seconds):
    """A reader that throws what it reads away and stops by itself."""
    process = subprocess.Popen(
        ["curl", "-s", "-N", "-o", "/dev/null", "--max-time", str(seconds),
         f"http://{http}{path}"])
    STARTED.append(process)
    return process


def wait_for(predicate, what, limit_s=30):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def converter_row(label, camera_arg, path):
    process, control_addr, http = serve(camera_arg)
    control = Control(control_addr)
    reader = viewer(http, path, WARMUP_S + DURATION_S + 5)
    wait_for(lambda: control.stats().get("converter") == "running", "the converter")
    time.sleep(WARMUP_S)
    before, ticks_before, t0 = control.stats(), cpu_ticks(process.pid), time.monotonic()
    time.sleep(DURATION_S)
    after, ticks_after, t1 = control.stats(), cpu_ticks(process.pid), time.monotonic()
    span = t1 - t0
    camloop_cpu = 100 * (ticks_after - ticks_before) / HZ / span
    child_cpu = 100 * (int(after["converter_cpu_us"]) - int(before["converter_cpu_us"])) / 1e6 / span
    rate = lambda key: (int(after[key]) - int(before[key])) / span
    print(f"| {label} | {camloop_cpu:.1f} % | {child_cpu:.1f} % | "
          f"{rate('converter_frames_in'):.1f} | {rate('converter_frames_out'):.1f} | "
          f"{rate('converter_frames_dropped'):.1f} |")
    reader.kill()
    stop(process)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def capture_latencies(clip):
    process, control_addr, http = serve(camera(clip, "h264"), linger="1")
    control = Control(control_addr)
    wait_for(lambda: control.stats().get("codec") == "h264", "the H.264 camera")
    cold = []
    for _ in range(CAPTURES):
        wait_for(lambda: control.stats().get("converter") == "off", "the decoder to stop")
        t0 = time.monotonic()
        reply = control.request("c")
        cold.append((time.monotonic() - t0) * 1000)
        assert reply.startswith("OK "), reply
    reader = viewer(http, "/stream.mjpg", 600)
    wait_for(lambda: control.stats().get("converter") == "running", "the decoder")
    warm = []
    for _ in range(CAPTURES):
        t0 = time.monotonic()
        reply = control.request("c")
        warm.append((time.monotonic() - t0) * 1000)
        assert reply.startswith("OK "), reply
    reader.kill()
    stop(process)
    for label, values in (("warm (a viewer keeps the decoder running)", warm),
                          ("cold (each capture starts the decoder)", cold)):
        print(f"| {label} | {statistics.median(values):.0f} ms | "
              f"{percentile(values, 99):.0f} ms | {min(values):.0f} ms | {max(values):.0f} ms |")


def idle_cost(clip):
    """The decoder's CPU while nobody needs a JPEG: camloop's (0, stopped
    after the linger) against an always-on transcoder's."""
    process, control_addr, http = serve(camera(clip, "h264"), linger="1")
    control = Control(control_addr)
    reader = viewer(http, "/stream.mjpg", 2)
    wait_for(lambda: control.stats().get("converter") == "running", "the decoder")
    reader.wait()
    wait_for(lambda: control.stats().get("converter") == "off", "the decoder to stop")
    before, t0 = control.stats(), time.monotonic()
    time.sleep(DURATION_S)
    after, span = control.stats(), time.monotonic() - t0
    lingering = 100 * (int(after["converter_cpu_us"]) - int(before["converter_cpu_us"])) / 1e6 / span
    reader = viewer(http, "/stream.mjpg", WARMUP_S + DURATION_S + 5)
    wait_for(lambda: control.stats().get("converter") == "running", "the decoder")
    time.sleep(WARMUP_S)
    before, t0 = control.stats(), time.monotonic()
    time.sleep(DURATION_S)
    after, span = control.stats(), time.monotonic() - t0
    always_on = 100 * (int(after["converter_cpu_us"]) - int(before["converter_cpu_us"])) / 1e6 / span
    reader.kill()
    stop(process)
    print(f"| camloop, `--converter-linger 1`, nobody watching | {lingering:.1f} % |")
    print(f"| always-on decoder (the go2rtc model), same stream | {always_on:.1f} % |")


def main():
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"DURATION_S={DURATION_S:g} WARMUP_S={WARMUP_S:g} CAPTURES={CAPTURES}.\n")
    clips = {
        ("h264", "1280x720"): h264_clip("1280x720", "2M"),
        ("h264", "640x480"): h264_clip("640x480", "1M"),
        ("mjpeg", "1280x720"): mjpeg_clip("1280x720"),
        ("mjpeg", "640x480"): mjpeg_clip("640x480"),
    }
    print("### Each converter while it runs (30 fps)\n")
    print("| converter, camera | camloop CPU | converter CPU | in /s | out /s | dropped /s |")
    print("|---|---:|---:|---:|---:|---:|")
    for size in ("1280x720", "640x480"):
        converter_row(f"decoder (H.264 → JPEG), {size} H.264, 1 `/stream.mjpg` viewer",
                      camera(clips[("h264", size)], "h264"), "/stream.mjpg")
        converter_row(f"encoder (JPEG → H.264), {size} MJPEG, 1 `/stream.h264` viewer",
                      camera(clips[("mjpeg", size)], "mjpeg"), "/stream.h264")
    print("\n### Capture latency of a 1280x720 H.264 camera, request → file in place\n")
    print("| decoder | p50 | p99 | min | max |")
    print("|---|---:|---:|---:|---:|")
    capture_latencies(clips[("h264", "1280x720")])
    print("\n### The decoder while nobody needs a JPEG (1280x720 H.264)\n")
    print("| | decoder CPU, % of one core |")
    print("|---|---:|")
    idle_cost(clips[("h264", "1280x720")])


try:
    main()
finally:
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()
    subprocess.run(["rm", "-rf", WORK], check=False)
