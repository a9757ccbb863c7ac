#!/usr/bin/env bash
# Makes (once) the clean Debian 12 root tests/package.rs installs the
# packages into, from Debian's own packages with mmdebstrap, and prints the
# path of its tarball:
#
#   $CAMLOOP_DEBROOT_DIR/bookworm-KEY.tar   (default /var/tmp/camloop-debroot)
#
# It is cached outside the clone, so that CI (a fresh clone every run) does
# not make it again: KEY changes with what goes in (below), and an older
# tarball is then replaced. Delete the directory to start over.
#
# What is in it: Debian's minbase (the Essential packages and apt), and
# systemd for `systemd-analyze verify`. Nothing of camloop's own
# dependencies is installed; their .deb files (OpenCV's libraries, adduser)
# wait in /var/cache/apt/archives with the package lists they came from, so
# `apt-get install ./camloop_….deb` in a copy of the root resolves and
# installs them the way it would on any Debian machine, without the network.
#
# It needs root, or mmdebstrap's --mode=unshare (unprivileged user
# namespaces and subordinate ids for the user); without either it fails and
# says so. Measured on 2 cores: about 30 s with a fast mirror.
set -euo pipefail

suite=bookworm
mirror=${CAMLOOP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# In the root: systemd-analyze (tests/package.rs verifies the installed units).
include=systemd
# Downloaded only: what `apt-get install --no-install-recommends` of the two
# packages pulls in (dpkg-shlibdeps' Depends of the OpenCV build, and
# adduser for the maintainer scripts). A dependency missing here is still
# fetched from the mirror, so the test works, only more slowly.
download="adduser libopencv-core406 libopencv-imgcodecs406 libopencv-imgproc406 libopencv-videoio406"

dir=${CAMLOOP_DEBROOT_DIR:-/var/tmp/camloop-debroot}
key=$(printf '%s\n' 1 "$suite" "$mirror" "$include" "$download" | sha256sum | cut -c1-12)
tarball="$dir/$suite-$key.tar"

if [ -f "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    mode=root
elif unshare --user --map-root-user true 2>/dev/null; then
    mode=unshare
else
    echo "debroot: making a Debian root needs root, or unprivileged user namespaces for mmdebstrap --mode=unshare; this user ($(id -un)) has neither" >&2
    exit 1
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "debroot: mmdebstrap is missing (scripts/setup.sh test installs it)" >&2
    exit 1
fi

mkdir -p "$dir"
# One maker at a time; whoever waited finds the tarball made.
exec 9>"$dir/lock"
flock 9
if [ -f "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

echo "debroot: making $tarball (mmdebstrap --mode=$mode, $suite from $mirror)" >&2
partial="$tarball.partial"
rm -f "$partial"
# --skip=cleanup/apt keeps the package lists and the downloaded .debs.
# shellcheck disable=SC2016 # $1 and $MMDEBSTRAP_APT_CONFIG are the hook's.
mmdebstrap --mode="$mode" --variant=minbase --format=tar \
    --include="$include" \
    --skip=cleanup/apt \
    --customize-hook='APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get install --download-only --no-install-recommends -y '"$download" \
    "$suite" "$partial" "$mirror" >&2
mv "$partial" "$tarball"
# Older roots (made for another KEY) are of no more use.
find "$dir" -maxdepth 1 -name "$suite-*.tar" ! -path "$tarball" -delete
echo "$tarball"
