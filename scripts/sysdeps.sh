#!/bin/sh
# The Debian packages that tests and the demo use (make sysdeps; make test and make demo run it):
#   chromium               tests/report: renders the HTML report headless
#   libopencv-dev, cmake, g++-aarch64-linux-gnu, shellcheck   the C++ demo, its ARM cross-build, lint
#   qemu-user-static, g++-arm-linux-gnueabihf, ccache   Paddle Lite's ARM kernels (lite setup --arm)
# Installs the missing ones when run as root where apt-get exists; otherwise prints what is missing
# and carries on. Never fails the build: a test that needs a missing one skips and says why.
# VITDEPLOY_SYSDEPS=check only reports.
set -u

PACKAGES="chromium libopencv-dev g++-aarch64-linux-gnu shellcheck cmake qemu-user-static g++-arm-linux-gnueabihf ccache"
# VITDEPLOY_SYSDEPS_ARM=1 (make arm-check): debootstrap too, for the private arm64 sysroot with
# Debian's OpenCV that the linux-arm64 bundle's cross-build and self-check use (never multiarch
# arm64 OpenCV on this machine: it conflicts with, and removes, the amd64 OpenCV)
if [ "${VITDEPLOY_SYSDEPS_ARM:-}" = 1 ]; then
    PACKAGES="$PACKAGES debootstrap"
fi

installed() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    case "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" in
        *"install ok installed"*) return 0 ;;
        *) return 1 ;;
    esac
}

missing=""
for pkg in $PACKAGES; do
    installed "$pkg" || missing="$missing $pkg"
done
missing="${missing# }"
[ -z "$missing" ] && exit 0

if [ "${VITDEPLOY_SYSDEPS:-}" != "check" ] && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: installing $missing"
    # shellcheck disable=SC2086  # one word per package
    if apt-get -qq -o DPkg::Lock::Timeout=120 update \
            && DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=120 install -y \
                --no-install-recommends $missing; then
        exit 0
    fi
    echo "sysdeps: warning: apt-get could not install all of: $missing (continuing; tests that need them skip)" >&2
    exit 0
fi
echo "sysdeps: missing Debian packages: $missing" >&2
echo "sysdeps: install them with: sudo apt-get install $missing (continuing; tests that need them skip)" >&2
exit 0
