"""Build, run and cross-check a bundle's C++ demo on this machine (tests and the package writer).

x86: the ``paddlelite`` wheel's ``lite.so`` (in the Lite toolchain, see ``vitdeploy.lite.env``)
exports Paddle Lite's C++ light API, so the demo builds against it with the v2.13-rc public
headers and runs the x86 twin ``.nb``. ARM Linux: the bundle's build.sh cross-compiles against the
light library ``vitdeploy lite setup --arm`` builds from source and the target's OpenCV from a
private Debian sysroot (``sysroot``); run.sh runs it under QEMU. Without that library, the demo is
compiled with ``aarch64-linux-gnu-g++`` and its link is checked: every symbol left unresolved
after libc/libstdc++ must be Paddle Lite's or OpenCV's (``cross_check_aarch64``).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import VitdeployError
from ..lite import env as lite_env
from . import sysroot

HEADERS_ENV = "VITDEPLOY_LITE_HEADERS"
HEADER_FILES = ("paddle_api.h", "paddle_place.h")
VENDORED_HEADERS = Path(__file__).parent / "third_party" / "paddle_lite_v2.13rc" / "include"
TEMPLATES = Path(__file__).resolve().parent / "templates"
EXE = "vitdeploy_demo"
# symbols the demo may leave to the Paddle Lite and OpenCV libraries (mangled prefixes: nested
# names, typeinfo/vtable of their classes)
_ALLOWED_PREFIXES = {"paddle::lite_api": ("_ZN6paddle8lite_api", "_ZNK6paddle8lite_api"),
                     "cv": ("_ZN2cv", "_ZNK2cv", "_ZTIN2cv", "_ZTVN2cv")}


T = TypeVar("T")


class NativeToolError(VitdeployError):
    """A tool or library the native build needs is missing (skip-worthy, says what is missing)."""


class NativeBuildError(VitdeployError):
    """The demo did not build, or its cross-compiled objects reference unexpected symbols."""


def lite_headers() -> Path:
    """The folder holding Paddle Lite's paddle_api.h and paddle_place.h: $VITDEPLOY_LITE_HEADERS,
    else the copy vitdeploy ships (third_party/, Apache-2.0)."""
    folder = Path(os.environ.get(HEADERS_ENV) or VENDORED_HEADERS)
    if not all((folder / h).is_file() for h in HEADER_FILES):
        raise NativeToolError(f"Paddle Lite's C++ headers ({', '.join(HEADER_FILES)}) are not in "
                              f"{folder}; set {HEADERS_ENV} to the include/ folder of a Paddle Lite "
                              "v2.13-rc release")
    return folder


def _paddlelite_dir() -> Path:
    found = sorted(lite_env.env_dir().glob("lib/python3.*/site-packages/paddlelite/lite.so"))
    if not found:
        raise NativeToolError(f"the Lite toolchain at {lite_env.env_dir()} has no paddlelite/lite.so; "
                              "run 'vitdeploy lite setup'")
    return found[-1].parent


def _libpython() -> Path:
    """The shared libpython the Lite environment's interpreter comes from (lite.so needs it)."""
    cfg = lite_env.env_dir() / "pyvenv.cfg"
    homes = []
    if cfg.is_file():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                homes.append(Path(value.strip()).parent / "lib")
    for home in homes:
        for name in ("libpython3.10.so.1.0", "libpython3.10.so"):
            if (home / name).is_file():
                return home / name
    raise NativeToolError("lite.so needs a shared libpython3.10 and the Lite environment's Python "
                          f"({', '.join(map(str, homes)) or 'unknown home'}) has none; build Python "
                          "3.10 with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")


def runtime_library_dirs() -> list[Path]:
    """What LD_LIBRARY_PATH needs for an x86 demo: lite.so, its libiomp5.so, libpython3.10."""
    lite = _paddlelite_dir()
    return [lite, lite / "libs", _libpython().parent]


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def x86_sdk(dest: Path) -> Path:
    """A PADDLE_LITE_DIR for linux-x86 made from the Lite toolchain: include/ (the two public
    headers), lib/liblite_pybind.so -> lite.so (its SONAME), lib/libs -> paddlelite/libs (libiomp5,
    where lite.so's RUNPATH $ORIGIN/libs looks), libpython3.10 links, and
    lib/libpaddle_light_api_shared.so as a GNU ld linker script naming lite.so and libpython3.10 -
    so the bundle's CMakeLists.txt links it under the release archives' library name unchanged."""
    headers, lite, libpython = lite_headers(), _paddlelite_dir(), _libpython()
    dest = Path(dest).resolve()
    (dest / "include").mkdir(parents=True, exist_ok=True)
    lib = dest / "lib"
    lib.mkdir(exist_ok=True)
    for h in HEADER_FILES:
        shutil.copyfile(headers / h, dest / "include" / h)
    _link(lib / "liblite_pybind.so", lite / "lite.so")
    _link(lib / "libs", lite / "libs")
    _link(lib / "libiomp5.so", lite / "libs" / "libiomp5.so")
    for name in ("libpython3.10.so", "libpython3.10.so.1.0"):
        _link(lib / name, libpython)
    # lite.so leaves Python's symbols to the process; an executable must name libpython itself
    (lib / "libpaddle_light_api_shared.so").write_text(
        f'INPUT ( "{lib / "liblite_pybind.so"}" "{lib / "libpython3.10.so"}" )\n')
    return dest


def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if not path:
        raise NativeToolError(f"{name} not found: {why}")
    return path


def _opencv_present() -> bool:
    """System OpenCV headers, or an OpenCV_DIR for CMake to use instead."""
    return bool(os.environ.get("OpenCV_DIR")) or any(
        (Path(d) / "opencv4/opencv2/core.hpp").is_file() for d in ("/usr/include", "/usr/local/include"))


def _tail(text: str, n: int = 1) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join(errors[:n] or lines[-n:])[:400]


def build(bundle_dir: Path, build_dir: Path, target: str = "linux-x86",
          paddle_lite_dir: Path | None = None, timeout: float = 900) -> Path:
    """Run the bundle's own build.sh for ``target`` into ``build_dir``; the executable's path.
    linux-x86 gets its PADDLE_LITE_DIR from ``x86_sdk`` unless one is given."""
    bundle_dir, build_dir = Path(bundle_dir).resolve(), Path(build_dir).resolve()
    script = bundle_dir / "build.sh"
    if not script.is_file():
        raise NativeBuildError(f"{bundle_dir} has no build.sh")
    _require_tool("cmake", "install cmake (Debian: apt-get install cmake)")
    if target == "linux-x86":
        _require_tool("c++", "install a C++ compiler (Debian: apt-get install g++)")
        if not _opencv_present():
            raise NativeToolError("OpenCV headers not found: install libopencv-dev or set OpenCV_DIR")
    if paddle_lite_dir is None:
        if target != "linux-x86":
            raise NativeToolError(f"building {target} needs the Paddle Lite release library for "
                                  "it (paddle_lite_dir)")
        paddle_lite_dir = x86_sdk(build_dir / "paddle-lite-x86")
    env = {**os.environ, "PADDLE_LITE_DIR": str(paddle_lite_dir), "TARGET": target,
           "BUILD_DIR": str(build_dir / target)}
    cross = sysroot.CROSS.get(target)
    if cross and "OpenCV_DIR" not in os.environ and platform.machine() != cross.machine:
        env.update(_sysroot_call(sysroot.build_env, target, _opencv_include(), build_dir))
    try:
        p = subprocess.run(["bash", str(script)], cwd=bundle_dir, env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NativeBuildError(f"build.sh for {target} did not finish in {timeout:.0f} s") from None
    exe = build_dir / target / EXE
    if p.returncode != 0 or not exe.is_file():
        raise NativeBuildError(f"build.sh for {target} failed: {_tail(p.stdout + p.stderr)}")
    return exe


def run_bundle(bundle_dir: Path, build_dir: Path, target: str, *args: str,
               paddle_lite_dir: Path | None = None, timeout: float = 900
               ) -> subprocess.CompletedProcess:
    """Run a built demo through the bundle's own run.sh (ARM Linux on an x86 host: under QEMU,
    as run.sh does it), with ``paddle_lite_dir``'s libraries."""
    env = {**os.environ, "TARGET": target, "BUILD_DIR": str(Path(build_dir).resolve() / target),
           "GLOG_minloglevel": "3"}
    cross = sysroot.CROSS.get(target)
    if cross and platform.machine() != cross.machine and "QEMU_LD_PREFIX" not in env:
        env["QEMU_LD_PREFIX"] = str(_sysroot_call(sysroot.sysroot, target))
    if paddle_lite_dir is not None:
        env["PADDLE_LITE_DIR"] = str(paddle_lite_dir)
    return subprocess.run(["bash", str(Path(bundle_dir) / "run.sh"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def run_demo(exe: Path, bundle_dir: Path, *args: str, timeout: float = 300,
             ) -> subprocess.CompletedProcess:
    """Run a linux-x86 demo on ``bundle_dir`` with the Lite toolchain's libraries on the path."""
    dirs = [Path(exe).resolve().parent, *runtime_library_dirs()]
    old = os.environ.get("LD_LIBRARY_PATH")
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([*map(str, dirs), *([old] if old else [])]),
           "GLOG_minloglevel": "3", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([str(exe), "--bundle", str(bundle_dir), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def _sysroot_call(fn: Callable[..., T], *args: object) -> T:
    try:
        return fn(*args)
    except sysroot.SysrootError as e:  # a missing tool or sysroot: skip-worthy, as the others
        raise NativeToolError(str(e)) from None


def _opencv_include() -> Path:
    for p in (Path("/usr/include/opencv4"), Path("/usr/local/include/opencv4")):
        if (p / "opencv2" / "core.hpp").is_file():
            return p
    raise NativeToolError("OpenCV headers (opencv4/opencv2/core.hpp) not found: install libopencv-dev")


def _classify(mangled: str) -> str:
    for owner, prefixes in _ALLOWED_PREFIXES.items():
        if mangled.startswith(prefixes):
            return owner
    return "other"


def _demangle(names: list[str], cxxfilt: str | None) -> list[str]:
    if not names or not cxxfilt:
        return names
    p = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True)
    return p.stdout.splitlines() if p.returncode == 0 else names


def cross_check_aarch64(bundle_dir: Path, work_dir: Path | None = None) -> dict:
    """Compile every src/*.cc of the bundle for aarch64 (C++14, against the Lite and OpenCV
    headers), then link the objects against the aarch64 libc/libstdc++ with unresolved symbols
    reported as warnings: what stays unresolved must all be paddle::lite_api or cv symbols.

    OpenCV's headers are shared across architectures except the generated cvconfig.h, which only
    OpenCV's own build includes (cvdef.h, under __OPENCV_BUILD): core/imgproc/imgcodecs.hpp compile
    for aarch64 from /usr/include/opencv4 as they are."""
    gxx = _require_tool("aarch64-linux-gnu-g++", "install g++-aarch64-linux-gnu")
    nm = _require_tool("aarch64-linux-gnu-nm", "install binutils-aarch64-linux-gnu")
    cxxfilt = shutil.which("aarch64-linux-gnu-c++filt") or shutil.which("c++filt")
    headers, opencv = lite_headers(), _opencv_include()
    src = Path(bundle_dir) / "src"
    sources = sorted(src.glob("*.cc"))
    if not sources:
        raise NativeBuildError(f"{src} holds no .cc files")
    work = Path(work_dir) if work_dir else Path(bundle_dir) / "build" / "aarch64-check"
    work.mkdir(parents=True, exist_ok=True)
    # third-party headers as system headers: the warnings reported are the demo's own
    flags = ["-std=c++14", "-O2", "-Wall", "-Wextra", "-ffp-contract=off", f"-I{src}",
             "-isystem", str(headers), "-isystem", str(opencv)]
    objects, warnings = [], []
    for cc in sources:
        obj = work / (cc.stem + ".o")
        p = subprocess.run([gxx, *flags, "-c", str(cc), "-o", str(obj)], capture_output=True, text=True)
        if p.returncode != 0:
            raise NativeBuildError(f"aarch64 compile of {cc.name} failed: {_tail(p.stderr)}")
        warnings += [ln for ln in p.stderr.splitlines() if "warning:" in ln]
        objects.append(obj)
    p = subprocess.run([nm, "-u", *map(str, objects)], capture_output=True, text=True)
    undefined = sorted({ln.split()[-1] for ln in p.stdout.splitlines()
                        if ln.strip() and not ln.endswith(":")})
    by_owner: dict[str, list[str]] = {}
    for sym in undefined:
        by_owner.setdefault(_classify(sym), []).append(sym)
    # link: libc/libstdc++/libm resolve for real; the rest becomes "undefined reference" warnings
    exe = work / EXE
    p = subprocess.run([gxx, *map(str, objects), "-o", str(exe), "-Wl,--warn-unresolved-symbols"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise NativeBuildError(f"aarch64 link check failed: {_tail(p.stderr)}")
    unresolved = sorted(set(re.findall(r"undefined reference to `([^']+)'", p.stderr)))
    # the linker prints demangled names: the owner is the qualified name, after any return type
    unexpected = [s for s in unresolved
                  if not re.match(r"^(?:[\w:<>,* ]+ )?(?:paddle::lite_api::|cv::|typeinfo for cv::|"
                                  r"vtable for cv::)", s)]
    if unexpected:
        raise NativeBuildError(f"the aarch64 link leaves symbols that neither Paddle Lite nor OpenCV "
                               f"provides: {'; '.join(unexpected[:5])}")
    return {
        "compiler": subprocess.run([gxx, "--version"], capture_output=True,
                                   text=True).stdout.splitlines()[0],
        "flags": flags[:5],
        "sources": [s.name for s in sources],
        "warnings": warnings,
        "undefined_in_objects": {k: len(v) for k, v in sorted(by_owner.items())},
        "paddle_lite_symbols": _demangle(by_owner.get("paddle::lite_api", []), cxxfilt),
        "opencv_symbols": _demangle(by_owner.get("cv", []), cxxfilt),
        "unresolved_after_link": unresolved,
        "executable": str(exe),
    }
