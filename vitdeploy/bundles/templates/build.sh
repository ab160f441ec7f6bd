#!/usr/bin/env bash
# Build vitdeploy_demo for this bundle's target (config.json "target", or $TARGET).
#
#   PADDLE_LITE_DIR=/path/to/inference_lite_lib.<platform>/cxx ./build.sh [extra cmake args]
#
# Environment: PADDLE_LITE_DIR (required: include/ and lib/ of the Paddle Lite release),
# ANDROID_NDK (android targets), OpenCV_DIR (OpenCVConfig.cmake's folder; required for android,
# optional on Linux where the system OpenCV is found), TARGET, BUILD_DIR (default build/<target>),
# JOBS. The executable lands in $BUILD_DIR/vitdeploy_demo.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "build.sh: $*" >&2
  exit 1
}

target="${TARGET:-}"
if [ -z "$target" ]; then
  [ -f "$HERE/config.json" ] || die "no config.json beside build.sh; set TARGET"
  target="$(sed -n 's/.*"target"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$HERE/config.json" | head -n 1)"
fi
[ -n "$target" ] || die "cannot read the target from config.json; set TARGET"

[ -n "${PADDLE_LITE_DIR:-}" ] || die "set PADDLE_LITE_DIR to the Paddle Lite C++ library for $target" \
  "(the cxx/ folder of the inference_lite_lib release archive, with include/ and lib/; see README.md)"
[ -f "$PADDLE_LITE_DIR/include/paddle_api.h" ] || die "PADDLE_LITE_DIR=$PADDLE_LITE_DIR has no include/paddle_api.h"
command -v cmake >/dev/null 2>&1 || die "cmake not found; install it (Debian: apt-get install cmake)"

build_dir="${BUILD_DIR:-$HERE/build/$target}"
args=(-S "$HERE" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "-DPADDLE_LITE_DIR=$PADDLE_LITE_DIR")
if [ -n "${OpenCV_DIR:-}" ]; then
  args+=("-DOpenCV_DIR=$OpenCV_DIR")
fi

case "$target" in
  android-arm8 | android-armv7)
    [ -n "${ANDROID_NDK:-}" ] || die "set ANDROID_NDK to the Android NDK (r21 or newer) to build $target"
    toolchain="$ANDROID_NDK/build/cmake/android.toolchain.cmake"
    [ -f "$toolchain" ] || die "ANDROID_NDK=$ANDROID_NDK has no build/cmake/android.toolchain.cmake"
    [ -n "${OpenCV_DIR:-}" ] || die "set OpenCV_DIR to the OpenCV Android SDK's sdk/native/jni" \
      "(https://opencv.org/releases: opencv-<version>-android-sdk.zip)"
    if [ "$target" = android-arm8 ]; then
      abi=arm64-v8a
      triple=aarch64-linux-android
    else
      abi=armeabi-v7a
      triple=arm-linux-androideabi
    fi
    args+=("-DCMAKE_TOOLCHAIN_FILE=$toolchain" "-DANDROID_ABI=$abi" -DANDROID_PLATFORM=android-21
      -DANDROID_STL=c++_shared)
    ;;
  linux-arm64 | linux-armhf)
    if [ "$target" = linux-arm64 ]; then
      triple=aarch64-linux-gnu machine=aarch64 processor=aarch64 pkg=g++-aarch64-linux-gnu debarch=arm64
    else
      triple=arm-linux-gnueabihf machine=armv7l processor=armv7l pkg=g++-arm-linux-gnueabihf debarch=armhf
    fi
    if [ "$(uname -m)" != "$machine" ]; then
      command -v "$triple-g++" >/dev/null 2>&1 ||
        die "cross-compiling for $target needs $triple-g++ (Debian: $pkg)"
      args+=(-DCMAKE_SYSTEM_NAME=Linux "-DCMAKE_SYSTEM_PROCESSOR=$processor"
        "-DCMAKE_C_COMPILER=$triple-gcc" "-DCMAKE_CXX_COMPILER=$triple-g++")
      if [ -z "${OpenCV_DIR:-}" ]; then
        multiarch="/usr/lib/$triple/cmake/opencv4"
        [ -f "$multiarch/OpenCVConfig.cmake" ] || die "set OpenCV_DIR to an OpenCV built for" \
          "$target (or install Debian's libopencv-dev:$debarch)"
        args+=("-DOpenCV_DIR=$multiarch")
      fi
    fi
    ;;
  linux-x86) ;;
  *) die "unknown target '$target' (android-arm8, android-armv7, linux-arm64, linux-armhf, linux-x86)" ;;
esac

echo "build.sh: building vitdeploy_demo for $target in $build_dir"
cmake "${args[@]}" "$@"
cmake --build "$build_dir" -j "${JOBS:-2}"

if [ "${target%%-*}" = android ]; then
  # ANDROID_STL=c++_shared: the phone needs the NDK's libc++_shared.so beside the executable
  libcxx=""
  for f in "$ANDROID_NDK"/toolchains/llvm/prebuilt/*/sysroot/usr/lib/"$triple"/libc++_shared.so; do
    [ -f "$f" ] && libcxx="$f"
  done
  [ -n "$libcxx" ] || die "libc++_shared.so for $triple not found under $ANDROID_NDK"
  cp "$libcxx" "$build_dir/"
fi
echo "build.sh: built $build_dir/vitdeploy_demo; run it with ./run.sh IMAGE... or ./run.sh --selfcheck"
