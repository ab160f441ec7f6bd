#!/usr/bin/env bash
# Run vitdeploy_demo (built by ./build.sh): on the phone through adb for android targets (the
# bundle, the executable and its libraries go to /data/local/tmp/<bundle name>), in place for
# linux targets (linux-arm64 / linux-armhf on an x86 host: under QEMU user-mode emulation).
# Arguments pass through: ./run.sh IMAGE...   ./run.sh --selfcheck
# Local image files are pushed and --dump-input/--dump-output files pulled back.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "run.sh: $*" >&2
  exit 1
}

target="${TARGET:-}"
if [ -z "$target" ]; then
  target="$(sed -n 's/.*"target"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$HERE/config.json" | head -n 1)"
fi
[ -n "$target" ] || die "cannot read the target from config.json; set TARGET"
build_dir="${BUILD_DIR:-$HERE/build/$target}"
exe="$build_dir/vitdeploy_demo"
[ -x "$exe" ] || die "no $exe: run ./build.sh first"

case "$target" in
  linux-arm64 | linux-armhf)
    if [ "$target" = linux-arm64 ]; then
      triple=aarch64-linux-gnu machine=aarch64 emulator=qemu-aarch64 loader=/lib/ld-linux-aarch64.so.1
    else
      triple=arm-linux-gnueabihf machine=armv7l emulator=qemu-arm loader=/lib/ld-linux-armhf.so.3
    fi
    export LD_LIBRARY_PATH="$build_dir${PADDLE_LITE_DIR:+:$PADDLE_LITE_DIR/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if [ "$(uname -m)" = "$machine" ]; then
      exec "$exe" --bundle "$HERE" "$@"
    fi
    qemu="$(command -v "$emulator-static" || command -v "$emulator" || true)"
    [ -n "$qemu" ] || die "running the $target demo on $(uname -m) needs $emulator-static" \
      "(Debian: qemu-user-static), or run it on the board"
    # the target's loader and libraries: $QEMU_LD_PREFIX (a sysroot), else the host's multiarch
    # ones, else the cross compiler's
    if [ ! -e "$loader" ] && [ -z "${QEMU_LD_PREFIX:-}" ]; then
      export QEMU_LD_PREFIX="/usr/$triple"
    fi
    exec "$qemu" "$exe" --bundle "$HERE" "$@"
    ;;
  linux-*)
    export LD_LIBRARY_PATH="$build_dir${PADDLE_LITE_DIR:+:$PADDLE_LITE_DIR/lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec "$exe" --bundle "$HERE" "$@"
    ;;
  android-*) ;;
  *) die "unknown target '$target'" ;;
esac

command -v adb >/dev/null 2>&1 || die "adb not found: install Android platform-tools and connect the phone"
remote="/data/local/tmp/$(basename "$HERE")"

# one word for the phone's shell: single quotes, with ' as '\''
quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

adb shell "rm -rf $(quote "$remote") && mkdir -p $(quote "$remote/inputs")" >/dev/null
push=("$exe" "$HERE/model.nb" "$HERE/labels.txt" "$HERE/config.json")
[ -d "$HERE/selfcheck" ] && push+=("$HERE/selfcheck")
for lib in "$build_dir"/*.so; do
  [ -f "$lib" ] && push+=("$lib")
done
adb push "${push[@]}" "$remote/" >/dev/null

cmd="cd $(quote "$remote") && LD_LIBRARY_PATH=$(quote "$remote") ./vitdeploy_demo"
pulls=()
n=0
while [ $# -gt 0 ]; do
  arg="$1"
  shift
  case "$arg" in
    --dump-input | --dump-output)
      [ $# -gt 0 ] || die "$arg needs a value"
      pulls+=("$1")
      cmd+=" $arg $(quote "$remote/$(basename "$1")")"
      shift
      ;;
    --dump-input=* | --dump-output=*)
      pulls+=("${arg#*=}")
      cmd+=" ${arg%%=*} $(quote "$remote/$(basename "${arg#*=}")")"
      ;;
    -*) cmd+=" $(quote "$arg")" ;;
    *)
      if [ -f "$arg" ]; then
        n=$((n + 1))
        dest="$remote/inputs/${n}_$(basename "$arg")"
        adb push "$arg" "$dest" >/dev/null
        cmd+=" $(quote "$dest")"
      else
        cmd+=" $(quote "$arg")"
      fi
      ;;
  esac
done

status=0
adb shell "$cmd" || status=$?
for f in ${pulls[@]+"${pulls[@]}"}; do
  adb pull "$remote/$(basename "$f")" "$f" >/dev/null || status=1
done
exit "$status"
