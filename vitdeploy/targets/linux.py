"""Linux boards (aarch64) and x86-64 hosts: the demo is built with g++ and runs in place."""

from __future__ import annotations

from typing import Any

from . import Target


def _arm64(target: Target, ctx: dict[str, Any]) -> dict[str, str]:
    lib_root = ctx["lib_root"]
    return {
        "opencv": ("The demo decodes and resizes with OpenCV 4 (core, imgproc, imgcodecs): on the "
                   "board `sudo apt install libopencv-dev` (Debian, Ubuntu, Armbian, Raspberry Pi "
                   "OS 64-bit). A cross build needs an aarch64 OpenCV: Debian's "
                   "`libopencv-dev:arm64` (multiarch), or `OpenCV_DIR` pointing at one."),
        "build": (
            "On the board (g++ and CMake 3.10+), in this folder:\n\n"
            "```sh\n"
            f"PADDLE_LITE_DIR=/path/to/{lib_root}/cxx ./build.sh\n"
            "```\n\n"
            "On an x86-64 host the same command cross-compiles with `aarch64-linux-gnu-g++` "
            "(`sudo apt install g++-aarch64-linux-gnu`); then copy this whole folder, with "
            f"`build/{target.name}/`, to the board. The demo lands in "
            f"`build/{target.name}/vitdeploy_demo`, with `libpaddle_light_api_shared.so` beside it."),
        "run": (
            "On the board, in this folder:\n\n"
            "```sh\n"
            "./run.sh path/to/image.jpg        # top-5 with labels, and the time per run\n"
            "./run.sh --selfcheck              # the check below; exit code 0 = passed\n"
            "```"),
        "verification": ctx["verification"] + (
            " Not verified: running on an aarch64 board, or against Paddle Lite's armlinux "
            "library, since neither is available where vitdeploy is tested; "
            "`./run.sh --selfcheck` on the board is that check."),
    }


def _x86(target: Target, ctx: dict[str, Any]) -> dict[str, str]:
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
            "python -c 'from vitdeploy.targets.native import x86_sdk; print(x86_sdk(\"lite-x86\"))'\n"
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


TARGETS = (
    Target("linux-arm64", "linux", "arm8", "aarch64", "an aarch64 Linux board (arm64)",
           "armlinux.armv8.gcc", _arm64),
    Target("linux-x86", "linux", "x86", "x86_64", "an x86-64 Linux machine", None, _x86),
)
