#!/usr/bin/python3
"""A small RTSP server for tests/h264_stream.rs: serves one H.264 clip
(Annex-B, as `ffmpeg -f h264` writes it) at rtsp://127.0.0.1:PORT/clip,
looping for as long as it runs, through GStreamer's gst-rtsp-server.

    /usr/bin/python3 tests/rtsp_server.py CLIP.h264 [PORT] [FPS]

PORT 0 (the default) lets the kernel choose; the port taken is printed as
`ready rtsp://127.0.0.1:PORT/clip` once the server listens. FPS (default
30) paces the clip: a raw H.264 file carries no timestamps, so h264parse
stamps the access units at that rate and the RTSP sink sends them in real
time, as a camera would.

Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and GStreamer's
base, good (rtph264pay) and bad (h264parse) plugins: `scripts/setup.sh
test` installs them. Stops on SIGTERM or SIGINT, or when its parent (the
test) goes away and its stdin closes.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: rtsp_server.py CLIP.h264 [PORT] [FPS]")
    clip = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    fps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    Gst.init(None)
    for element in ("multifilesrc", "h264parse", "rtph264pay"):
        if Gst.ElementFactory.find(element) is None:
            sys.exit(f"rtsp_server.py: GStreamer element {element} is missing (scripts/setup.sh test)")

    # multifilesrc with loop=true reads the whole file as one buffer, again
    # and again; h264parse splits it into access units and, with the frame
    # rate in the caps, gives each a timestamp. The SPS and PPS travel in
    # band because the clip has them before every IDR (x264 repeats them in
    # a raw stream), so config-interval stays 0: rtph264pay's -1 inserts
    # them before every *slice* of an IDR, and with x264's sliced threads
    # (-tune zerolatency) an IDR has several, so the stream would end an
    # access unit in the middle of a picture and no decoder would take it
    # cleanly.
    quoted = clip.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( multifilesrc location="{quoted}" loop=true '
        f"caps=video/x-h264,stream-format=byte-stream,framerate={fps}/1 "
        f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=0 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # One pipeline for every client, so the stream keeps its pace.
    factory.set_shared(True)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory("/clip", factory)
    source_id = server.attach(None)
    if source_id == 0:
        sys.exit(f"rtsp_server.py: cannot listen on 127.0.0.1:{port}")

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    # The test holds our stdin open; its end (the test exited, even killed)
    # stops the server, so no RTSP server outlives its test.
    GLib.io_add_watch(
        GLib.IOChannel.unix_new(sys.stdin.fileno()),
        GLib.PRIORITY_DEFAULT,
        GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
        lambda *_: (loop.quit(), False)[1],
    )

    print(f"ready rtsp://127.0.0.1:{server.get_bound_port()}/clip", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
