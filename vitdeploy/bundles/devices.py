"""Every device ``vitdeploy package`` writes a bundle for, in one module: Android phones (the demo
cross-compiled with the NDK, run over adb) and Linux boards and hosts (built with g++, run in
place). Adding a device is one ``Device`` in ``DEVICES`` (plus its README sections here)."""

from __future__ import annotations

from typing import Any

from ..errors import OptionError
from .device import Device

# Paddle-Lite-Demo builds its Android demos against this OpenCV SDK release.
OPENCV_VERSION = "4.1.0"
OPENCV_URL = ("https://github.com/opencv/opencv/releases/download/"
              f"{OPENCV_VERSION}/opencv-{OPENCV_VERSION}-android-sdk.zip")


def sections(target: Device, ctx: dict[str, Any]) -> dict[str, str]:
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
            " That proves, for Android, this C++ source and Paddle Lite's ARM kernels on this "
            "kind of `.nb`. Not verified: running on a phone, the NDK build (clang, libc++, "
            "`android-21`) and Paddle Lite's Android library, none of which is available where "
            "vitdeploy is tested; `./run.sh --selfcheck` on the phone is that check."),
    }


ANDROID = (
    Device("android-arm8", "android", "arm8", "arm64-v8a", "an Android phone (arm64-v8a)",
           "android.armv8.clang.c++_shared", sections),
    Device("android-armv7", "android", "armv7", "armeabi-v7a",
           "an Android phone (armeabi-v7a, 32-bit)", "android.armv7.clang.c++_shared", sections),
)


# per ARM Linux target: (GNU triple, Debian arch, `vitdeploy lite setup --arm` ABI, boards)
_ARM_LINUX = {"linux-arm64": ("aarch64-linux-gnu", "arm64", "armv8",
                              "Debian, Ubuntu, Armbian, Raspberry Pi OS 64-bit"),
              "linux-armhf": ("arm-linux-gnueabihf", "armhf", "armv7",
                              "Debian, Armbian, Raspberry Pi OS 32-bit")}


def _arm_linux(target: Device, ctx: dict[str, Any]) -> dict[str, str]:
    lib_root = ctx["lib_root"]
    triple, debarch, abi, boards = _ARM_LINUX[target.name]
    return {
        "opencv": ("The demo decodes and resizes with OpenCV 4 (core, imgproc, imgcodecs): on the "
                   f"board `sudo apt install libopencv-dev` ({boards}). A cross build needs an "
                   f"OpenCV built for {debarch}: `OpenCV_DIR` pointing at one, or Debian's "
                   f"`libopencv-dev:{debarch}` (multiarch; it conflicts with the host's amd64 "
                   "OpenCV, so vitdeploy's tests unpack Debian's packages into a private sysroot "
                   "instead)."),
        "build": (
            "On the board (g++ and CMake 3.10+), in this folder:\n\n"
            "```sh\n"
            f"PADDLE_LITE_DIR=/path/to/{lib_root}/cxx ./build.sh\n"
            "```\n\n"
            f"On an x86-64 host the same command cross-compiles with `{triple}-g++` "
            f"(`sudo apt install g++-{triple}`); then copy this whole folder, with "
            f"`build/{target.name}/`, to the board. The demo lands in "
            f"`build/{target.name}/vitdeploy_demo`, with `libpaddle_light_api_shared.so` beside it. "
            f"`vitdeploy lite setup --arm {abi}` builds the same Paddle Lite "
            f"{ctx['opt_version']} light library from source (no download): its folder, shown "
            "by `vitdeploy doctor`, works as `PADDLE_LITE_DIR`."),
        "run": (
            "On the board, in this folder:\n\n"
            "```sh\n"
            "./run.sh path/to/image.jpg        # top-5 with labels, and the time per run\n"
            "./run.sh --selfcheck              # the check below; exit code 0 = passed\n"
            "```\n\n"
            "On an x86-64 host `run.sh` runs the demo under QEMU user-mode emulation "
            "(`qemu-user-static`; `QEMU_LD_PREFIX` names the target's libraries): the ARM "
            "kernels' results, not the board's speed."),
        "verification": ctx["verification"] + (
            " Not verified: running on a real board (QEMU executes the same instructions, but "
            "not on the board's CPU, kernel or libraries); `./run.sh --selfcheck` on the board is "
            "that check."),
    }


def _x86(target: Device, ctx: dict[str, Any]) -> dict[str, str]:
    return {
        "opencv": "The demo decodes and resizes with OpenCV 4: `sudo apt install libopencv-dev`.",
        "build": (
            "`PADDLE_LITE_DIR` is a folder with `include/paddle_api.h` and "
            "`lib/libpaddle_light_api_shared.so` of Paddle Lite "
            f"{ctx['opt_version']} for x86-64. vitdeploy makes one from the "
            f"`paddlelite=={ctx['wheel_version']}` wheel's `lite.so` (the Lite toolchain that "
            "`vitdeploy lite setup` installs; it needs a shared `libpython3.10`) and the "
            f"`paddle_api.h` / `paddle_place.h` headers of Paddle Lite {ctx['opt_version']} "
            "(vitdeploy ships them; `$VITDEPLOY_LITE_HEADERS` names another folder):\n\n"
            "```sh\n"
            "python -c 'from vitdeploy.bundles.native_build import x86_sdk; print(x86_sdk(\"lite-x86\"))'\n"
            "PADDLE_LITE_DIR=$PWD/lite-x86 ./build.sh\n"
            "```"),
        "run": (
            "```sh\n"
            "PADDLE_LITE_DIR=$PWD/lite-x86 ./run.sh path/to/image.jpg   # top-5, time per run\n"
            "PADDLE_LITE_DIR=$PWD/lite-x86 ./run.sh --selfcheck         # exit code 0 = passed\n"
            "```"),
        "verification": ctx["verification"] + (
            " This is the target vitdeploy's tests build and run: there, its self-check passes."),
    }


LINUX = (
    Device("linux-arm64", "linux", "arm8", "aarch64", "an aarch64 Linux board (arm64)",
           "armlinux.armv8.gcc", _arm_linux),
    Device("linux-armhf", "linux", "armv7", "armhf", "a 32-bit ARM Linux board (armhf, ARMv7 NEON)",
           "armlinux.armv7hf.gcc", _arm_linux),
    Device("linux-x86", "linux", "x86", "x86_64", "an x86-64 Linux machine", None, _x86),
)


DEVICES = (*ANDROID, *LINUX)


def get_device(name: str) -> Device:
    """The device ``--target`` names, or one line listing them."""
    for d in DEVICES:
        if d.name == name:
            return d
    raise OptionError(f"unknown --target {name!r}; available: {', '.join(d.name for d in DEVICES)}")
