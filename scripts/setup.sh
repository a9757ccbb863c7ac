#!/usr/bin/env bash
# Installs what camloop needs on a Debian (or Ubuntu) machine, and only what
# is missing. Safe to run again: with everything present it changes nothing.
#
#   scripts/setup.sh          build dependencies (Rust, OpenCV, clang for its bindings)
#   scripts/setup.sh test     also what the test suite uses (chromium, ffmpeg, node, redis,
#                             promtool, GStreamer's RTSP server, mmdebstrap)
#   scripts/setup.sh soak     also what scripts/soak.sh uses (ffmpeg, python3, curl, procps)
#
# CAMLOOP_NO_OPENCV=1 skips OpenCV and clang (for `cargo build --no-default-features`).
set -euo pipefail
mode=${1:-build}
cd "$(dirname "$0")/.."

# build-essential: the C/C++ compiler the opencv crate (and cc) build with.
packages=(pkg-config ca-certificates curl build-essential)
if [ "${CAMLOOP_NO_OPENCV:-0}" != 1 ]; then
    # The opencv crate generates its bindings with libclang at build time.
    packages+=(libopencv-dev clang libclang-dev)
fi
if [ "$mode" = test ]; then
    # chromium: the web page test; ffmpeg: ffprobe reads the MJPEG stream;
    # util-linux: setpriv/prlimit for the fault tests; redis: the benchmark reference;
    # python3-opencv: tests/integrations.rs reads the stream with cv2.VideoCapture
    # (Debian's /usr/bin/python3, not whatever python3 is first on PATH).
    packages+=(chromium ffmpeg util-linux procps netcat-openbsd redis-server redis-tools)
    packages+=(python3 python3-opencv)
    # prometheus: its promtool checks /metrics (tests/metrics_conventions.rs).
    # The package is 96 MB and, on a machine booted with systemd, enables a
    # Prometheus server on :9090; installed without its recommends like all
    # of these. `systemctl disable --now prometheus` stops that server if
    # you only want the tool.
    packages+=(prometheus)
    # GStreamer's RTSP server through Debian's python3 (python3-gi): the rtsp://
    # camera of tests/h264_stream.rs and the RTSP benchmark's yardstick
    # (benches/reference/rtsp_reference.py); base and good for
    # multifilesrc and rtph264pay, bad for h264parse.
    packages+=(python3-gi gir1.2-gst-rtsp-server-1.0)
    packages+=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
    # GStreamer as an RTSP client of camloop's own server (tests/rtsp_serve.rs):
    # gst-launch-1.0 from tools, avdec_h264 from libav.
    packages+=(gstreamer1.0-tools gstreamer1.0-libav)
    command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
    # tests/package.rs: mmdebstrap makes the clean Debian 12 root the packages
    # are installed into (scripts/debroot.sh), with Debian's archive key
    # (already there on Debian, not on Ubuntu); dpkg-shlibdeps, which
    # computes the packages' Depends, is dpkg-dev's, which build-essential
    # brings. systemd-analyze runs inside that root, not here.
    packages+=(mmdebstrap debian-archive-keyring)
fi
if [ "$mode" = soak ]; then
    # ffmpeg: the clip and the exec: camera; python3: the soak's own
    # clients and checks; curl: viewers; procps: ps for the process checks.
    packages+=(ffmpeg python3 curl procps)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]} (without recommended packages)" >&2
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
        echo "setup: prometheus is only for its promtool (the /metrics check); with systemd it also starts a Prometheus server on :9090" >&2
    fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "setup: cargo is in ~/.cargo/bin; add it to PATH (source ~/.cargo/env)" >&2
    else
        echo "setup: installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    fi
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

if [ "$mode" = test ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
    # Only the driver library: it uses Debian's chromium, never downloads a browser.
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
