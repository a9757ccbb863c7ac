#!/usr/bin/env python3
"""The clients and checks of scripts/soak.sh that are easier in Python than
in a shell: connection churn, a paced MJPEG viewer that records its bytes, a
viewer that stops reading, and the parsers the checks run at the end.

    soak.py churn CONTROL HTTP SECONDS RATE
    soak.py viewer URL OUT SECONDS BYTES_PER_S [TOKEN]
    soak.py stopped URL SECONDS [TOKEN]
    soak.py check-stream FILE [cut]
    soak.py check-captures KEEP CAM=SNAPSHOTS[,CAM=SNAPSHOTS...] CAPTURED_DIR SNAPSHOT_DIR WINDOWS LOG...
    soak.py h264-reader URL OUT SECONDS BYTES_PER_S|0 [TOKEN]
    soak.py check-h264 CLIP_H264 RECORDING WINDOWS CAMERA
    soak.py rtsp-rogue HOST:PORT PATH SECONDS RATE [TOKEN]
    soak.py rtsp-status HOST:PORT PATH [TOKEN|-] [wrong]

Only loopback addresses are accepted (the soak never talks to anything
else); every client stops by itself after SECONDS. Results are one line on
stdout, words separated by spaces, the last "word" free text.
"""

import base64
import os
import random
import socket
import sys
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    host = host.strip("[]")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit(f"soak.py: {host} is not loopback")
    return host, int(port)


def split_url(url):
    """http://HOST:PORT/PATH -> ((host, port), path)"""
    if not url.startswith("http://"):
        raise SystemExit(f"soak.py: not an http:// URL: {url}")
    rest = url[len("http://"):]
    authority, _, path = rest.partition("/")
    return addr(authority), "/" + path


def request_head(url, token):
    (host, port), path = split_url(url)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: camloop-soak\r\n"
    if token:
        # HTTP Basic, any user name, the token as the password.
        credentials = base64.b64encode(f"soak:{token}".encode()).decode()
        head += f"Authorization: Basic {credentials}\r\n"
    return (host, port), (head + "\r\n").encode()


# ---------------------------------------------------------------------------
# JPEG and multipart parsing


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


class Stream:
    """camloop's MJPEG response parsed as it arrives: the head and the first
    `--BOUNDARY\r\n`, then parts, each headers, an empty line,
    Content-Length bytes of JPEG and `\r\n--BOUNDARY\r\n` (the delimiter
    that ends a part opens the next). Only bytes not yet part of a whole
    part are kept: `data` is empty exactly at a part boundary. `problem` is
    the first thing that was wrong."""

    def __init__(self):
        self.data = bytearray()
        self.consumed = 0
        self.boundary = None
        self.parts = 0
        self.untimed = 0
        self.last_frame = None
        self.problem = None
        self.part_bytes = None  # the current part's size once its head is in

    def feed(self, chunk):
        self.data += chunk
        while self.problem is None and self._step():
            pass

    def need(self):
        """Bytes still missing from the current part, if known."""
        if self.part_bytes is None:
            return None
        return self.part_bytes - len(self.data)

    def _take(self, n):
        del self.data[:n]
        self.consumed += n

    def _step(self):
        data = self.data
        if self.boundary is None and data.startswith(b"--"):
            # A body without its HTTP head (curl -o): the first line is
            # the delimiter.
            end = data.find(b"\r\n")
            if end == -1:
                return False
            self.boundary = bytes(data[2:end])
            self.delimiter = b"--" + self.boundary + b"\r\n"
            self.part_end = b"\r\n" + self.delimiter
            self.opened = True
            self._take(end + 2)
            return True
        if self.boundary is None:
            end = data.find(b"\r\n\r\n")
            if end == -1:
                return False
            head = data[:end].decode("latin-1").split("\r\n")
            if not head[0].startswith("HTTP/1.1 200"):
                self.problem = f"status {head[0]!r}"
                return False
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-type":
                    for parameter in value.split(";")[1:]:
                        key, _, val = parameter.strip().partition("=")
                        if key.lower() == "boundary":
                            self.boundary = val.strip('"').lstrip("-").encode()
            if self.boundary is None:
                self.problem = "no boundary in the Content-Type"
                return False
            self.delimiter = b"--" + self.boundary + b"\r\n"
            self.part_end = b"\r\n" + self.delimiter
            self._take(end + 4)
            return True
        if self.parts == 0 and self.consumed and not getattr(self, "opened", False):
            if len(data) < len(self.delimiter):
                return False
            if data[:len(self.delimiter)] != self.delimiter:
                self.problem = f"the stream does not open with {self.delimiter!r}"
                return False
            self.opened = True
            self._take(len(self.delimiter))
            return True
        head_end = data.find(b"\r\n\r\n")
        if head_end == -1:
            if len(data) > 4096:
                self.problem = f"part {self.parts}: no end of its head in 4 KiB"
            return False
        headers = {}
        for line in data[:head_end].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers["content-length"])
        except (KeyError, ValueError):
            self.problem = f"part {self.parts}: no Content-Length"
            return False
        body_start = head_end + 4
        self.part_bytes = body_start + length + len(self.part_end)
        if len(data) < self.part_bytes:
            return False
        body = bytes(data[body_start:body_start + length])
        problem = jpeg_problem(body)
        if problem:
            self.problem = f"part {self.parts}: {problem}"
            return False
        if data[body_start + length:self.part_bytes] != self.part_end:
            self.problem = f"part {self.parts}: no delimiter right after the JPEG"
            return False
        frame = headers.get("x-frame")
        if frame is None:
            self.untimed += 1  # NO SIGNAL frames carry no X-Frame
        else:
            if self.last_frame is not None and int(frame) <= self.last_frame:
                self.problem = f"part {self.parts}: X-Frame {frame} after {self.last_frame}"
                return False
            self.last_frame = int(frame)
        self.parts += 1
        self._take(self.part_bytes)
        self.part_bytes = None
        return True

    def at_boundary(self):
        return self.parts > 0 and not self.data


def check_stream(path, cut=""):
    """A recorded stream: every part a whole JPEG, X-Frame increasing, and
    nothing after the last part (the recorder stops on a part boundary).
    With `cut`, the recording was cut off by the client (curl --max-time):
    what follows the last whole part may be the start of one, as long as
    nothing in it is wrong."""
    stream = Stream()
    total = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            total += len(chunk)
            stream.feed(chunk)
    trailing = total - stream.consumed
    problem = stream.problem or (f"{trailing} bytes after the last whole part" if trailing and not cut else "-")
    if stream.parts == 0 and problem == "-":
        problem = "no part at all"
    print(stream.parts, stream.untimed, total, trailing, problem)


# ---------------------------------------------------------------------------
# Clients


def churn(control, http, duration, rate):
    """Connect/disconnect churn at a capped rate; every tenth connection
    sends garbage to the control port, every tenth another one to the HTTP
    port."""
    control, http = addr(control), addr(http)
    duration, rate = float(duration), float(rate)
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
    print(made, failed, garbage, first_error or "-")


def viewer(url, out, duration, rate, token=""):
    """A viewer that reads steadily at `rate` bytes/s, in small reads with a
    small receive buffer (a slow link, not a bursty reader), records every
    byte to `out`, and after `duration` reads on to the end of the part it
    is in, so the recording ends on a part boundary. Prints: bytes, parts,
    how it ended (`end`, or `closed` / `error ...` if the server ended it)."""
    target, head = request_head(url, token)
    duration, rate = float(duration), float(rate)
    sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect(target)
    sock.sendall(head)
    stream = Stream()
    start = time.monotonic()
    received = 0
    ended = "end"
    with open(out, "wb") as f:
        while True:
            now = time.monotonic()
            over = now - start >= duration
            if over and stream.at_boundary():
                break
            if now - start >= duration + 30:
                ended = "no-part-boundary-30s-after-the-end"
                break
            if stream.problem:
                ended = "bad-stream"
                break
            allowance = int(rate * (now - start)) - received
            if allowance <= 0:
                time.sleep(min(0.05, -allowance / rate + 0.001))
                continue
            size = min(4096, allowance)
            if over:
                # Read no further than the end of the current part (a byte
                # at a time through its short head).
                size = min(size, stream.need() or 1)
            try:
                chunk = sock.recv(size)
            except OSError as e:
                ended = f"error {e!r}"
                break
            if not chunk:
                ended = "closed"
                break
            received += len(chunk)
            f.write(chunk)
            stream.feed(chunk)
    sock.close()
    print(received, stream.parts, ended)


def stopped(url, duration, token=""):
    """A viewer that reads the response head and a little of the stream,
    then stops reading but keeps the connection open. At the end it says
    whether the server closed it (`dropped`) or not (`open`)."""
    target, head = request_head(url, token)
    sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect(target)
    sock.sendall(head)
    got = 0
    while got < 16 * 1024:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += len(chunk)
    time.sleep(float(duration))
    # Drain what the kernel holds: a closed connection ends in EOF or a
    # reset, an open one in "would block".
    sock.setblocking(False)
    state = "open"
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                state = "dropped"
                break
    except BlockingIOError:
        state = "open"
    except ConnectionResetError:
        state = "dropped"
    sock.close()
    print(state, got)


# ---------------------------------------------------------------------------
# Captures


def jpeg_grab_ms(data):
    """The grab time in camloop's JPEG comment (`camloop frame=N
    ts=SECONDS.MICROS ...`), in ms, or None. The first such comment: the
    server puts its own right after SOI; an http:// camera's frames carry
    the upstream camloop's after it (the upstream's grab, earlier)."""
    i = 2
    found = None
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xFE:
            text = data[i + 4:i + 2 + length].decode("latin-1")
            if text.startswith("camloop "):
                for word in text.split():
                    if word.startswith("ts=") and found is None:
                        found = float(word[3:]) * 1000
        if marker == 0xDA:
            break
        i += 2 + length
    return found


def check_captures(keep, total_snapshots, captured_dir, snapshot_dir, windows_file, *logs):
    """Every OK capture's copy is a complete JPEG of the reported size; the
    snapshot directory holds what retention promises, the newest capture
    among them; a reply other than OK is allowed only as `ERR camera:` for
    a camera, from a request whose time overlaps one of that camera's
    logged fault windows.

    Each LOG is LABEL=CAMERA=FILE: the loop's label (`default` for plain
    `c`), the camera it asked, and its replies, each line `START_MS END_MS
    REPLY...`. WINDOWS lines
    are `CAMERA START_MS END_MS WHAT`."""
    keep = int(keep)
    windows = {}
    for line in open(windows_file):
        camera, start, end, _ = line.split(None, 3)
        windows.setdefault(camera, []).append((int(start), int(end)))
    ok, problems, errors = [], [], []
    asked = {}  # file -> the latest request it answered (ms)
    untimed = early = 0
    summary = []
    for log in logs:
        label, camera, path = log.split("=", 2)
        counts = {"ok": 0, "in_window": 0, "other": 0}
        for line in open(path, errors="replace"):
            start, end, reply = line.rstrip("\n").split(" ", 2)
            start, end = int(start), int(end)
            if reply.startswith("OK ") and len(reply.split()) == 4:
                _, name, _, length = reply.split()
                ok.append((name, int(length)))
                asked[name] = max(asked.get(name, start), start)
                counts["ok"] += 1
            elif reply.startswith("ERR camera:") and any(
                    start <= w_end and w_start <= end
                    for w_start, w_end in windows.get(camera, [])):
                counts["in_window"] += 1
            else:
                counts["other"] += 1
                errors.append(f"{label}: {reply}")
        summary.append(f"{label}:{counts['ok']}/{counts['in_window']}/{counts['other']}")
    checked = 0
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
        grabbed = jpeg_grab_ms(data) if problem is None else None
        if problem is None and grabbed is None:
            untimed += 1
        elif problem is None and grabbed < asked[name]:
            early += 1
            problem = f"grabbed {asked[name] - grabbed:.0f} ms before its request"
        if problem:
            problems.append(f"{name}: {problem}")
    # Random garbage can spell a capture now and then (a line that is just
    # "c"), so the directory may hold snapshots nobody here asked for:
    # check that it holds what retention promises for each camera (its own
    # newest KEEP: `soak-NNNNNN.jpg` for the first camera,
    # `soak-NNNNNN.NAME.jpg` for the others), each file complete, and the
    # newest capture of ours of each camera among them.
    totals = dict(item.split("=") for item in total_snapshots.split(",") if item)
    first_camera = next(iter(totals), "cam0")

    def camera_of(name):
        parts = name.split(".")
        return parts[1] if len(parts) == 3 else first_camera

    def seq(name):
        digits = "".join(c for c in name.split(".")[0] if c.isdigit())
        return int(digits or 0)

    kept = sorted(os.listdir(snapshot_dir))
    for camera, total in totals.items():
        mine = [name for name in kept if camera_of(name) == camera]
        if len(mine) != min(keep, int(total)):
            problems.append(
                f"snapshot dir holds {len(mine)} files of {camera}, not {min(keep, int(total))}")
        ours = [name for name, _ in ok if camera_of(name) == camera]
        if ours:
            newest = max(ours, key=seq)
            if newest not in mine:
                problems.append(f"the newest capture {newest} is not kept")
    for name in kept:
        problem = jpeg_problem(open(os.path.join(snapshot_dir, name), "rb").read())
        if not name.startswith("soak-") or camera_of(name) not in totals or problem:
            problems.append(f"kept {name}: {problem or 'stray file'}")
    # Captures that waited for the same frame share its one snapshot file,
    # so the files our captures made are the distinct names, not the OKs.
    ok_files = len({name for name, _ in ok})
    # OK count, files they name, other replies, checked, problems, OK
    # files without a grab time, files grabbed before their request,
    # per loop ok/in-window/other, notes
    print(len(ok), ok_files, len(errors), checked, len(problems), untimed, early, ",".join(summary),
          "; ".join(problems[:3] + errors[:3]) or "-")


# ---------------------------------------------------------------------------
# H.264: a /stream.h264 reader and the check of what it recorded


def h264_reader(url, out, duration, rate, token=""):
    """Reads /stream.h264 for `duration` seconds, at `rate` bytes/s in
    small reads with a small receive buffer (a slow link), or as fast as it
    comes with rate 0, and records every byte of the body to `out` and,
    in `out`.times, `MS OFFSET` per read (the wall-clock time the bytes
    from OFFSET on arrived). Prints: bytes, how it ended (`end`, `closed`,
    `error ...`, `status ...`)."""
    target, head = request_head(url, token)
    duration, rate = float(duration), float(rate)
    sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
    if rate:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect(target)
    sock.sendall(head)
    start = time.monotonic()
    received = 0
    ended = "end"
    buffered = b""
    body = False
    with open(out, "wb") as f, open(out + ".times", "w") as times:
        while True:
            now = time.monotonic()
            if now - start >= duration:
                break
            size = 1 << 16
            if rate:
                allowance = int(rate * (now - start)) - received
                if allowance <= 0:
                    time.sleep(min(0.05, -allowance / rate + 0.001))
                    continue
                size = min(4096, allowance)
            try:
                sock.settimeout(max(0.05, duration - (now - start)))
                chunk = sock.recv(size)
            except socket.timeout:
                continue
            except OSError as e:
                ended = f"error {e!r}"
                break
            if not chunk:
                ended = "closed"
                break
            received += len(chunk)
            if not body:
                buffered += chunk
                end = buffered.find(b"\r\n\r\n")
                if end == -1:
                    continue
                status = buffered.split(b"\r\n", 1)[0].decode("latin-1")
                if " 200 " not in status + " ":
                    ended = "status " + status.replace(" ", "_")
                    break
                body = True
                chunk = buffered[end + 4:]
            times.write(f"{int(time.time() * 1000)} {f.tell()}\n")
            f.write(chunk)
    sock.close()
    print(received, ended)


def access_units(data):
    """(start offset, is IDR, key) per access unit of an Annex-B stream:
    a VCL NAL unit (1 or 5) whose first_mb_in_slice is 0 (the first bit
    of its slice header, ue(v) 0 = bit 1) opens an AU; the key is a hash
    of the AU's VCL NAL units, the bytes that are the pictures (SPS, PPS,
    SEI and AUDs may be added or dropped on the way without changing
    it). The last AU is left out: the recording may end inside it."""
    import hashlib
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    aus = []
    current = None
    for n, s in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[s:end].rstrip(b"\x00")
        if not nal:
            continue
        kind = nal[0] & 0x1F
        if kind not in (1, 5):
            continue
        if len(nal) > 1 and nal[1] & 0x80:
            if current:
                aus.append(current)
            current = [s, kind == 5, hashlib.sha1()]
        if current:
            current[2].update(nal)
            current[1] = current[1] or kind == 5
    return [(start, idr, h.hexdigest()) for start, idr, h in aus]


def check_h264(clip, recording, windows_file, camera):
    """The recording of a /stream.h264 reader against the clip the camera
    loops: each AU must be the clip's next one (its index + 1, wrapping);
    anything else is a gap, and the AU after a gap must be an IDR. A gap
    is excused (`in-window`) when its AU arrived within a logged fault
    window of the camera or 2 s after it (a restarted child starts the
    clip over). Prints: AUs, IDRs, gaps, gaps outside the windows, gaps
    not followed by an IDR, AUs not in the clip, the clip's AUs, problem."""
    clip_aus = access_units(open(clip, "rb").read() + b"\x00\x00\x01\x01\x80")
    index = {}
    for n, (_, idr, key) in enumerate(clip_aus):
        index.setdefault(key, n)
    problem = "-" if len(index) == len(clip_aus) else f"the clip repeats AUs ({len(index)} distinct of {len(clip_aus)})"
    windows = []
    for line in open(windows_file):
        cam, start, end, _ = line.split(None, 3)
        if cam == camera:
            windows.append((int(start), int(end) + 2000))
    times = [tuple(map(int, line.split())) for line in open(recording + ".times")]
    import bisect
    offsets = [o for _, o in times]

    def arrival(offset):
        return times[max(0, bisect.bisect_right(offsets, offset) - 1)][0]

    aus = access_units(open(recording, "rb").read())
    idrs = gaps = outside = no_idr = unknown = 0
    prev = None
    for start, idr, key in aus:
        idrs += idr
        n = index.get(key)
        if n is None:
            unknown += 1
            prev = None
            continue
        if prev is not None and n != (prev + 1) % len(clip_aus):
            gaps += 1
            if not clip_aus[n][1]:
                no_idr += 1
                if problem == "-":
                    problem = f"clip AU {n} (not an IDR) after clip AU {prev}"
            t = arrival(start)
            if not any(a <= t <= b for a, b in windows):
                outside += 1
        prev = n
    if not aus and problem == "-":
        problem = "no AU at all"
    print(len(aus), idrs, gaps, outside, no_idr, unknown, len(clip_aus), problem)


# ---------------------------------------------------------------------------
# RTSP: rogue clients and a status probe


def rtsp_exchange(sock, method, url, cseq, extra=""):
    sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}User-Agent: camloop-soak\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError(f"closed before the answer to {method}")
        data += chunk
        if data.startswith(b"$"):
            raise OSError("RTP before the answer")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers


def digest_params(headers):
    """realm and nonce of a 401's Digest challenge."""
    import re
    for value in headers.get("www-authenticate", []):
        if value.lower().startswith("digest"):
            return dict(re.findall(r'(\w+)="?([^",]*)"?', value[6:]))
    raise OSError("no Digest challenge")


def digest(params, method, url, token):
    """Authorization: Digest (MD5, no qop), any user, the token as the
    password."""
    import hashlib

    def md5(text):
        return hashlib.md5(text.encode()).hexdigest()

    if not params:
        return ""
    ha1 = md5(f"soak:{params['realm']}:{token}")
    response = md5(f"{ha1}:{params['nonce']}:{md5(f'{method}:{url}')}")
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Authorization: Digest username="soak", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{url}", response="{response}"{opaque}\r\n')


def rtsp_session(target, path, token, play=True):
    """DESCRIBE, SETUP (interleaved TCP) and PLAY, authenticating with
    Digest when there is a token; returns the socket, playing."""
    url = f"rtsp://{target[0]}:{target[1]}{path}"
    sock = socket.create_connection(target, timeout=10)
    params = {}
    accept = "Accept: application/sdp\r\n"
    status, headers = rtsp_exchange(sock, "DESCRIBE", url, 1, accept)
    if status == 401 and token:
        params = digest_params(headers)
        status, headers = rtsp_exchange(sock, "DESCRIBE", url, 2, accept + digest(params, "DESCRIBE", url, token))
    if status != 200:
        raise OSError(f"DESCRIBE {status}")
    base = headers.get("content-base", [url + "/"])[0]
    track = base.rstrip("/") + "/trackID=0"
    status, headers = rtsp_exchange(sock, "SETUP", track, 3, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                                    + digest(params, "SETUP", track, token))
    if status != 200:
        raise OSError(f"SETUP {status}")
    session = headers.get("session", [""])[0].split(";")[0]
    if play:
        status, headers = rtsp_exchange(sock, "PLAY", base, 4, f"Session: {session}\r\n"
                                        + digest(params, "PLAY", base, token))
        if status != 200:
            raise OSError(f"PLAY {status}")
    return sock


def rtsp_rogue(server, path, duration, rate, token=""):
    """RTSP clients that misbehave, at a capped rate, taking turns: one
    sends garbage (random bytes, a request line too long, a request for a
    method that does not exist, a `$` frame out of nowhere) and reads what
    comes back; one opens a session (DESCRIBE, SETUP, PLAY, Digest with
    the token), reads a little RTP and vanishes without TEARDOWN (close,
    or a reset). The server must answer the vanishing ones 200 to the end
    and keep serving everyone else. Prints: garbage sent, sessions
    vanished, sessions that failed, first failure."""
    target = addr(server)
    duration, rate = float(duration), float(rate)
    deadline = time.monotonic() + duration
    garbage = vanished = failed = n = 0
    first_error = ""
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if n % 2 == 0:
                with socket.create_connection(target, timeout=5) as s:
                    s.sendall(random.choice([
                        os.urandom(random.randint(1, 4000)),
                        b"DESCRIBE rtsp://x/" + b"a" * 9000 + b" RTSP/1.0\r\nCSeq: 1\r\n\r\n",
                        b"BREW rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
                        b"$\x00\x05\xff" + os.urandom(1500),
                        b"OPTIONS * RTSP/1.0\r\nCSeq: x\r\nContent-Length: 99999999\r\n\r\n",
                    ]))
                    try:
                        s.settimeout(1)
                        s.recv(4096)
                    except OSError:
                        pass
                garbage += 1
            else:
                sock = rtsp_session(target, path, token)
                got = 0
                while got < 8192:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise OSError("closed while playing")
                    got += len(chunk)
                if n % 4 == 1:
                    # A reset rather than a FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
                vanished += 1
        except OSError as e:
            if n % 2:
                failed += 1
                first_error = first_error or repr(e).replace(" ", "_")
        n += 1
        next_at += 1.0 / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(garbage, vanished, failed, first_error or "-")


def rtsp_status(server, path, token="-", wrong=""):
    """The status DESCRIBE gets: without credentials (token `-`), with the
    token, or with a wrong one (`wrong`)."""
    target = addr(server)
    url = f"rtsp://{target[0]}:{target[1]}{path}"
    with socket.create_connection(target, timeout=5) as sock:
        status, headers = rtsp_exchange(sock, "DESCRIBE", url, 1)
        if status == 401 and token != "-":
            params = digest_params(headers)
            status, _ = rtsp_exchange(sock, "DESCRIBE", url, 2,
                                      digest(params, "DESCRIBE", url, token + ("x" if wrong else "")))
    print(status)


def main(argv):
    commands = {
        "churn": churn,
        "viewer": viewer,
        "stopped": stopped,
        "check-stream": check_stream,
        "check-captures": check_captures,
        "h264-reader": h264_reader,
        "check-h264": check_h264,
        "rtsp-rogue": rtsp_rogue,
        "rtsp-status": rtsp_status,
    }
    if len(argv) < 2 or argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
