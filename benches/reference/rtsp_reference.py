#!/usr/bin/python3
"""gst-rtsp-server as the yardstick for camloop's RTSP viewers
(benches/rtsp_viewers.sh): serves one H.264 clip (Annex-B, as `ffmpeg -c
copy -f h264` writes it) at rtsp://127.0.0.1:PORT/clip, looping for as long
as it runs, to any number of clients over RTSP/TCP (interleaved) or UDP.

    /usr/bin/python3 benches/reference/rtsp_reference.py CLIP.h264 [PORT] [FPS]

PORT 0 (the default) lets the kernel choose; once the server listens it
prints `ready rtsp://127.0.0.1:PORT/clip`. FPS (default 30) paces the clip.

It is also the `rtsp://` camera of tests/h264_stream.rs. The stream:
multifilesrc loop=true reads the file again and again, h264parse splits it
into access units and stamps them at FPS (a raw H.264 file has no
timestamps), rtph264pay packetises them with config-interval=0 (the clip
carries its SPS and PPS before every IDR, as camloop's `exec:` camera
receives it; -1 would insert them before every slice of an IDR). The media
is shared: one pipeline for every client, as one camera feeds every viewer,
and a new client joins the running stream (it waits for the next IDR: no
GOP cache). Everything else is gst-rtsp-server's default (its thread pool
of 1 client thread, 200 ms of rtpbin latency, no suspend), as it is
commonly deployed. Multicast is not offered; UDP and TCP are.

Only 127.0.0.1 is served. Needs Debian's python3-gi,
gir1.2-gst-rtsp-server-1.0 and GStreamer's good (rtph264pay) and bad
(h264parse) plugins (scripts/setup.sh test). Stops on SIGTERM or SIGINT, or
when its stdin closes (the benchmark holds it open, so no server outlives
the benchmark, even a killed one).
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

MOUNT = "/clip"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: rtsp_reference.py CLIP.h264 [PORT] [FPS]")
    clip = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    fps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    Gst.init(None)
    for element in ("multifilesrc", "h264parse", "rtph264pay"):
        if Gst.ElementFactory.find(element) is None:
            sys.exit(f"rtsp_reference.py: GStreamer element {element} is missing (scripts/setup.sh test)")

    quoted = clip.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( multifilesrc location="{quoted}" loop=true '
        f"caps=video/x-h264,stream-format=byte-stream,framerate={fps}/1 "
        f"! h264parse ! rtph264pay name=pay0 pt=96 config-interval=0 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    # 500 viewers connect at once: a deep backlog keeps them out of SYN
    # retries (camloop's listener has the kernel's maximum too).
    server.set_backlog(4096)
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_reference.py: cannot listen on 127.0.0.1:{port}")

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    GLib.io_add_watch(
        GLib.IOChannel.unix_new(sys.stdin.fileno()),
        GLib.PRIORITY_DEFAULT,
        GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
        lambda *_: (loop.quit(), False)[1],
    )

    print(f"ready rtsp://127.0.0.1:{server.get_bound_port()}{MOUNT}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
