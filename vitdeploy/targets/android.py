"""Android phones: the demo is cross-compiled with the NDK and run over adb."""

from __future__ import annotations

from typing import Any

from . import Target

# Paddle-Lite-Demo builds its Android demos against this OpenCV SDK release.
OPENCV_VERSION = "4.1.0"
OPENCV_URL = ("https://github.com/opencv/opencv/releases/download/"
              f"{OPENCV_VERSION}/opencv-{OPENCV_VERSION}-android-sdk.zip")


def sections(target: Target, ctx: dict[str, Any]) -> dict[str, str]:
    lib_root = ctx["lib_root"]
    return {
        "opencv": (
            f"The demo decodes and resizes with OpenCV. Use the OpenCV {OPENCV_VERSION} Android SDK "
            f"(the one Paddle-Lite-Demo builds with): download "
            f"[opencv-{OPENCV_VERSION}-android-sdk.zip]({OPENCV_URL}) and unzip it; `OpenCV_DIR` "
            "below is its `sdk/native/jni` folder (the one holding `OpenCVConfig.cmake`). Any "
            f"OpenCV 4.x Android SDK with `{target.abi}` libraries works."),
        "build": (
            "Needs the Android NDK (r21 or newer) and CMake 3.10+, on Linux or macOS:\n\n"
            "```sh\n"
            "ANDROID_NDK=/path/to/android-ndk \\\n"
            f"PADDLE_LITE_DIR=/path/to/{lib_root}/cxx \\\n"
            "OpenCV_DIR=/path/to/OpenCV-android-sdk/sdk/native/jni \\\n"
            "./build.sh\n"
            "```\n\n"
            f"It builds `vitdeploy_demo` for `{target.abi}` (`android-21`, clang, `c++_shared`) in "
            f"`build/{target.name}/`, with `libpaddle_light_api_shared.so` and the NDK's "
            "`libc++_shared.so` beside it."),
        "run": (
            "Connect the phone with USB debugging on (`adb devices` lists it), then:\n\n"
            "```sh\n"
            "./run.sh path/to/image.jpg        # top-5 with labels, and the time per run\n"
            "./run.sh --selfcheck              # the check below; exit code 0 = passed\n"
            "```\n\n"
            "`run.sh` pushes the demo, its two libraries, `model.nb`, `labels.txt`, `config.json` "
            "and `selfcheck/` to `/data/local/tmp/<this folder's name>` with adb, pushes the "
            "images you name, and runs the demo there."),
        "verification": ctx["verification"] + (
            " Not verified: running on a phone, or against Paddle Lite's Android library, since "
            "neither is available where vitdeploy is tested; `./run.sh --selfcheck` on the "
            "phone is that check."),
    }


TARGETS = (
    Target("android-arm8", "android", "arm8", "arm64-v8a", "an Android phone (arm64-v8a)",
           "android.armv8.clang.c++_shared", sections),
    Target("android-armv7", "android", "armv7", "armeabi-v7a",
           "an Android phone (armeabi-v7a, 32-bit)", "android.armv7.clang.c++_shared", sections),
)
