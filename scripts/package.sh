#!/usr/bin/env bash
# Builds camloop's Debian packages with cargo-deb ([package.metadata.deb] in
# Cargo.toml), for the machine's own architecture:
#
#   scripts/package.sh          both packages
#   scripts/package.sh camloop  camloop_VERSION_ARCH.deb: the default build (OpenCV)
#   scripts/package.sh lean     camloop-lean_VERSION_ARCH.deb: --no-default-features
#
# The two conflict: each installs /usr/bin/camloop. The .deb files go to
# $CARGO_TARGET_DIR/debian/ (target/debian/ without it); their paths are
# printed on stdout, one a line, and everything else goes to stderr.
#
# It installs what is missing: the build dependencies (scripts/setup.sh;
# dpkg-shlibdeps, which computes the Depends from the binary, comes with
# build-essential's dpkg-dev) and cargo-deb (`cargo install`).
#
# A release build with OpenCV takes minutes: keep CARGO_TARGET_DIR across
# runs (tests/package.rs uses /var/tmp/camloop-package-target) and only
# camloop itself is recompiled.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
case "$which" in
    both | camloop | lean) ;;
    *)
        echo "usage: scripts/package.sh [camloop|lean]" >&2
        exit 2
        ;;
esac

if [ "$which" = lean ]; then
    CAMLOOP_NO_OPENCV=1 scripts/setup.sh >&2
else
    scripts/setup.sh >&2
fi
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

# The cargo-deb this was written for; another 3.x reads the same metadata.
cargo_deb_version=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
    echo "package: installing cargo-deb $cargo_deb_version (cargo install, a few minutes)" >&2
    # Its own temporary build directory, not camloop's.
    env -u CARGO_TARGET_DIR cargo install --locked --version "$cargo_deb_version" cargo-deb >&2
fi

target_dir=${CARGO_TARGET_DIR:-target}
out_dir="$target_dir/debian"
mkdir -p "$out_dir"

# The packaged camloop.service is contrib/camloop.service with the two lines
# a package changes: the binary is /usr/bin/camloop, and the service runs as
# the camloop user debian/postinst creates instead of a dynamic user. Each
# line must be found exactly once, so that a changed contrib file stops the
# build instead of shipping a half-edited unit.
units_dir="$target_dir/release/deb-units"
mkdir -p "$units_dir"
service=contrib/camloop.service
for line in 'ExecStart=/usr/local/bin/camloop ' 'DynamicUser=yes'; do
    count=$(grep -c "^$line" "$service" || true)
    if [ "$count" != 1 ]; then
        echo "package: expected one line starting with '$line' in $service, found $count" >&2
        exit 1
    fi
done
sed -e 's|^ExecStart=/usr/local/bin/camloop |ExecStart=/usr/bin/camloop |' \
    -e 's|^DynamicUser=yes$|User=camloop\nGroup=camloop|' \
    "$service" >"$units_dir/camloop.service.tmp"
mv "$units_dir/camloop.service.tmp" "$units_dir/camloop.service"

# --strip: the release profile keeps line tables (debug = 1) for profiling;
# the package ships the binary without them, as Debian does.
build() {
    local deb
    deb=$(cargo deb --locked --strip --output "$out_dir/" "$@")
    # cargo-deb prints the path of the package it wrote.
    [ -f "$deb" ] || {
        echo "package: cargo deb printed '$deb', which is no file" >&2
        exit 1
    }
    echo "$deb"
}
case "$which" in
    camloop) build ;;
    lean) build --variant lean ;;
    both)
        build
        build --variant lean
        ;;
esac
