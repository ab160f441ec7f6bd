"""Paddle Lite's own ARM kernels on this machine: the light library built from the source that
vitdeploy ships (v2.13-rc, the version of the wheel's ``opt``), a small runner linked to it, and
QEMU user-mode emulation to run them on an x86 host (natively on an ARM one).

Invariants:
- the build lives in the cache, keyed by version, ABI and build flags: a second ``setup`` of the
  same key is instant, a different key builds beside it;
- a build is written to a temp folder and moved into place only when complete (library, headers,
  runner, ``build.json``): an interrupted build leaves nothing that looks ready;
- nothing is downloaded: the source is ``third_party/paddle-lite-v2.13-rc-src.tar.gz``, checked
  against its sha256 before it is unpacked.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VitdeployError

VERSION = "v2.13-rc"
THIRD_PARTY = Path(__file__).resolve().parent / "third_party"
SOURCE = THIRD_PARTY / "paddle-lite-v2.13-rc-src.tar.gz"
SOURCE_SHA256 = "7e188f97a4396f27ff4907375802605087a361b70f16c089652cd3e0b5400b94"
RUNNER_SOURCE = Path(__file__).resolve().parent / "arm_runner.cc"
# The ops and kernels the 20 seed architectures and the sample use on ARM, as opt records them
# (scripts/arm_tailoring.py): a tailored build compiles only those kernels.
TAILORING = Path(__file__).resolve().parent / "arm_tailoring"
# our file ("<op or kernel attributes> <source file>" per line) -> the two parallel lists
# Paddle Lite's build reads from LITE_OPTMODEL_DIR (line i of one builds line i of the other)
TAILORING_LISTS = {"ops.txt": (".tailored_ops_list", ".tailored_ops_source_list"),
                   "kernels.txt": (".tailored_kernels_list", ".tailored_kernels_source_list")}
LIB = "libpaddle_light_api_shared.so"
# A tiny-publish light library (no Python, no CV, no tests), with the extra ops ViTs need
# (gelu, layer_norm, matmul_v2...), exceptions on (a bad model is an error, not an abort).
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DWITH_MKLDNN=OFF", "-DWITH_TESTING=OFF",
               "-DLITE_WITH_ARM=ON", "-DLITE_WITH_X86=OFF", "-DARM_TARGET_OS=armlinux",
               "-DARM_TARGET_LANG=gcc", "-DLITE_BUILD_EXTRA=ON", "-DLITE_WITH_PYTHON=OFF",
               "-DLITE_WITH_CV=OFF", "-DLITE_WITH_LOG=ON", "-DLITE_WITH_EXCEPTION=ON",
               "-DLITE_ON_TINY_PUBLISH=ON", "-DWITH_AVX=OFF")
Progress = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass(frozen=True)
class Abi:
    name: str  # what --arm takes
    cmake_abi: str  # ARM_TARGET_ARCH_ABI
    triple: str  # the GNU triple of the cross compiler and its sysroot (/usr/<triple>)
    qemu: str  # the user-mode emulator for an x86 host
    machine: str  # platform.machine() of a host that runs it natively
    nb_arches: tuple[str, ...]  # the .nb arches (convert --arch) its kernels run
    packages: tuple[str, ...]  # Debian packages of the cross compiler and the emulator
    cmake_extra: tuple[str, ...] = ()  # ABI-specific build flags

    @property
    def cxx(self) -> str:
        return f"{self.triple}-g++"


ABIS = {a.name: a for a in (
    Abi("armv8", "armv8", "aarch64-linux-gnu", "qemu-aarch64-static", "aarch64", ("arm8",),
        ("g++-aarch64-linux-gnu", "qemu-user-static", "cmake")),
    Abi("armv7", "armv7hf", "arm-linux-gnueabihf", "qemu-arm-static", "armv7l", ("armv7",),
        ("g++-arm-linux-gnueabihf", "qemu-user-static", "cmake"),
        # Tailoring copies every `using` alias of a kernel file without its #ifdef guard, so the
        # fp16 aliases need the float16_t type, which 32-bit arm_neon.h only declares with an
        # fp16 format (a type; no float32 code changes). -marm: in Debian's default Thumb-2
        # mode gcc 12 cannot give the depthwise-conv asm its registers ("impossible
        # constraints"); ARM mode can, and interworks with Thumb callers.
        ("-DCMAKE_CXX_FLAGS=-mfp16-format=ieee -marm", "-DCMAKE_C_FLAGS=-marm")),
)}


class ArmToolchainError(VitdeployError):
    """The ARM build cannot be made or used here (a missing tool says which package)."""


def abi_for(arch: str) -> Abi:
    """The ABI whose kernels run an ``arch`` .nb (arm8 -> armv8, armv7 -> armv7)."""
    for abi in ABIS.values():
        if arch in abi.nb_arches:
            return abi
    raise ArmToolchainError(f"no ARM kernels run a {arch!r} .nb; ARM builds: "
                            + ", ".join(f"{a.name} ({', '.join(a.nb_arches)})" for a in ABIS.values()))


def get_abi(name: str) -> Abi:
    if name not in ABIS:
        raise ArmToolchainError(f"unknown ARM ABI {name!r}; choose {', '.join(ABIS)}")
    return ABIS[name]


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitdeploy" / "lite-arm"
    return Path(os.environ.get("VITDEPLOY_LITE_ARM", default))


def tailored_ops() -> set[str]:
    """The ops a tailored build has kernels for."""
    return {line.split()[0] for line in (TAILORING / "ops.txt").read_text().splitlines() if line}


def _flags(abi: Abi, tailored: bool) -> list[str]:
    extra = [f"-DARM_TARGET_ARCH_ABI={abi.cmake_abi}", *abi.cmake_extra]
    if tailored:  # LITE_OPTMODEL_DIR: the lists under Paddle Lite's names, written by setup
        extra += ["-DLITE_BUILD_TAILOR=ON", "-DLITE_OPTMODEL_DIR=<tailoring>"]
    return [*CMAKE_FLAGS, *extra]


def build_key(abi: Abi, tailored: bool = True) -> str:
    lists = "".join((TAILORING / n).read_text() for n in TAILORING_LISTS) if tailored else "full"
    flags = hashlib.sha256(" ".join((SOURCE_SHA256, abi.cmake_abi, *CMAKE_FLAGS,
                                     *abi.cmake_extra, lists,
                                     RUNNER_SOURCE.read_bytes().hex())).encode()).hexdigest()
    return f"{VERSION}-{abi.name}-{'tailored' if tailored else 'full'}-{flags[:12]}"


def build_dir(abi: Abi, tailored: bool | None = None) -> Path:
    """The build in use: a tailored one unless only a full one exists (or ``tailored`` says)."""
    if tailored is not None:
        return cache_root() / build_key(abi, tailored)
    tailored_dir, full_dir = cache_root() / build_key(abi, True), cache_root() / build_key(abi, False)
    return full_dir if _complete(full_dir) and not _complete(tailored_dir) else tailored_dir


def _complete(d: Path) -> bool:
    return (d / "build.json").is_file() and (d / "runner").is_file() and (d / "lib" / LIB).is_file()


def native(abi: Abi) -> bool:
    return platform.machine() == abi.machine


@dataclass
class ArmStatus:
    abi: str
    ready: bool
    dir: str
    problem: str | None = None
    build: dict = field(default_factory=dict)  # build.json: seconds, flags, compiler, when

    def to_dict(self) -> dict:
        return asdict(self)


def status(abi_name: str = "armv8") -> ArmStatus:
    abi = get_abi(abi_name)
    d = build_dir(abi)
    if not _complete(d):
        return ArmStatus(abi.name, False, str(d), f"not built: run 'vitdeploy lite setup --arm "
                                                  f"{abi.name}'")
    missing = missing_tools(abi, building=False)
    info = json.loads((d / "build.json").read_text())
    if missing:
        return ArmStatus(abi.name, False, str(d), f"built, but {missing_text(missing)}", info)
    return ArmStatus(abi.name, True, str(d), None, info)


def missing_tools(abi: Abi, building: bool = True) -> list[tuple[str, str]]:
    """(command, Debian package) of what is missing to build (``building``) or to run."""
    need = [(abi.qemu, "qemu-user-static")] if not native(abi) else []
    if building:
        need = [(abi.cxx, abi.packages[0]), ("cmake", "cmake"), ("make", "make"), *need]
    return [(cmd, pkg) for cmd, pkg in need if shutil.which(cmd) is None]


def missing_text(missing: list[tuple[str, str]]) -> str:
    cmds = ", ".join(c for c, _ in missing)
    pkgs = " ".join(dict.fromkeys(p for _, p in missing))
    return (f"{cmds} not found: install the Debian packages {pkgs} ('make sysdeps' does, as root), "
            f"e.g. sudo apt-get install {pkgs}")


def runner_command(abi_name: str, nb: Path, threads: int, power_mode: int) -> tuple[list[str], dict]:
    """The argv and environment that run the runner on ``nb``: under QEMU with the cross
    sysroot on an x86 host, directly on an ARM one."""
    st = status(abi_name)
    if not st.ready:
        raise ArmToolchainError(f"the {abi_name} ARM kernels are {st.problem}")
    abi, d = ABIS[abi_name], Path(st.dir)
    env = {**os.environ, "LD_LIBRARY_PATH": str(d / "lib"), "GLOG_minloglevel": "3"}
    argv = [str(d / "runner"), str(nb), str(threads), str(power_mode)]
    if not native(abi):
        env["QEMU_LD_PREFIX"] = f"/usr/{abi.triple}"
        argv = [shutil.which(abi.qemu) or abi.qemu, *argv]
    return argv, env


def _check_source() -> None:
    if not SOURCE.is_file():
        raise ArmToolchainError(f"the Paddle Lite source {SOURCE} is missing from this vitdeploy; "
                                "reinstall it")
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != SOURCE_SHA256:
        raise ArmToolchainError(f"{SOURCE} does not match its sha256 (corrupt copy); reinstall "
                                "vitdeploy")


# Objects 'make publish_inference' compiles with these flags (measured on armv8; armv7 within a
# few): the makefiles list more (targets the publish does not build), so progress counts these.
EXPECTED_OBJECTS = {True: 168, False: 527}  # tailored, full


def _run(cmd: list[str], cwd: Path, log: Path, what: str, env: dict | None = None,
         on_line: Callable[[str], None] | None = None) -> None:
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    if code != 0:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
        kept = cache_root() / f"{log.parent.name.lstrip('.').split('.tmp-')[0]}.failed.log"
        shutil.copyfile(log, kept)  # the temp folder goes: the log stays for the user
        raise ArmToolchainError(f"{what} failed (exit {code}): {first.strip()[:300]}; the full "
                                f"log is {kept}")


def setup(abi_name: str = "armv8", force: bool = False, jobs: int | None = None,
          progress: Progress | None = None, full: bool = False) -> ArmStatus:
    """Build the ARM light library and the runner for ``abi_name`` (idempotent): tailored to
    the kernels the zoo needs, or every kernel (``full``: for models beyond the zoo)."""
    from ..resources import usable_cpus

    say = progress or (lambda _f, _m: None)
    abi = get_abi(abi_name)
    target = build_dir(abi, tailored=not full)
    if _complete(target) and not force:
        return status(abi.name)
    missing = missing_tools(abi)
    if missing:
        raise ArmToolchainError(f"building the {abi.name} ARM kernels needs {missing_text(missing)}")
    _check_source()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    log = tmp / "build.log"
    started = time.monotonic()
    try:
        say(0.0, f"unpacking Paddle Lite {VERSION}")
        with tarfile.open(SOURCE) as tar:
            tar.extractall(tmp / "src", filter="data")
        src = next((tmp / "src").iterdir())
        build = src / f"build.{abi.cmake_abi}"
        (build / "lite" / "gen_code").mkdir(parents=True)
        (build / "lite" / "gen_code" / "__generated_code__.cc").touch()
        launcher = ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"] \
            if shutil.which("ccache") else []
        say(0.01, f"configuring for {abi.name} ({abi.cxx})")
        lists = tmp / "tailoring"
        lists.mkdir()
        for ours, (names, sources) in TAILORING_LISTS.items():
            pairs = [line.split() for line in (TAILORING / ours).read_text().splitlines() if line]
            (lists / names).write_text("".join(f"{a}\n" for a, _ in pairs))
            (lists / sources).write_text("".join(f"{b}\n" for _, b in pairs))
        flags = [f.replace("<tailoring>", str(lists)) for f in _flags(abi, not full)]
        _run(["cmake", "..", *flags, *launcher], build, log, "configuring Paddle Lite")
        total, done = EXPECTED_OBJECTS[not full], 0

        def on_line(line: str) -> None:
            nonlocal done
            if "Building C" in line:
                done += 1
                frac = min(done / total, 1.0)
                spent = time.monotonic() - started
                eta = f", ~{(spent / frac - spent) / 60:.0f} min left" if frac > 0.05 else ""
                say(0.02 + 0.93 * frac, f"compiling Paddle Lite's ARM kernels: {done} of ~{total} "
                                        f"files{eta}")
            elif "Linking" in line:
                say(0.95, "linking the light library")

        # ccache keyed on paths relative to the temp folder: a rebuild (another key, --force)
        # reuses every unchanged object
        _run(["make", "publish_inference", f"-j{jobs or usable_cpus()}"], build, log,
             "building Paddle Lite", env={**os.environ, "LC_ALL": "C", "CCACHE_BASEDIR": str(tmp),
                                          "CCACHE_NOHASHDIR": "1"}, on_line=on_line)
        published = build / f"inference_lite_lib.armlinux.{abi.cmake_abi}" / "cxx"
        out = tmp / "out"
        shutil.copytree(published / "include", out / "include")
        (out / "lib").mkdir()
        shutil.copy2(published / "lib" / LIB, out / "lib" / LIB)
        say(0.97, "building the runner")
        _run([abi.cxx, "-O2", "-std=c++14", f"-I{out / 'include'}", str(RUNNER_SOURCE),
              f"-L{out / 'lib'}", "-lpaddle_light_api_shared", "-Wl,-rpath,$ORIGIN/lib",
              "-o", str(out / "runner")], tmp, log, "building the runner")
        say(0.98, "checking the build on a small model")
        _smoke_test(abi, out, tmp / "smoke")
        shutil.copy2(log, out / "build.log")
        info = {"version": VERSION, "abi": abi.name, "tailored": not full,
                "flags": _flags(abi, not full), "compiler": _version(abi.cxx),
                "seconds": round(time.monotonic() - started, 1), "objects": done,
                "ccache": bool(launcher), "jobs": jobs or usable_cpus()}
        (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(1.0, f"built in {(time.monotonic() - started) / 60:.1f} min")
    return status(abi.name)


SMOKE_MODEL = "DeiT_digits_patch8_32"  # vitdeploy's smallest architecture: seconds to convert


def _smoke_test(abi: Abi, out: Path, work: Path) -> None:
    """The new build runs a real model before it counts as ready: a random-weight digits DeiT,
    re-exported and optimized for ARM by the Lite toolchain, one batch through the runner."""
    import struct

    from ..models.loader import save_random_checkpoint
    from . import env as lite_env

    work.mkdir()
    ckpt = save_random_checkpoint(SMOKE_MODEL, work / "w.pdparams", seed=0)
    lite_env.run_worker("export", {"model": SMOKE_MODEL, "weights": str(ckpt),
                                   "out": str(work / "legacy")})
    res = lite_env.run_worker("optimize", {"model_dir": str(work / "legacy"), "valid_places": "arm",
                                           "out_prefix": str(work / "model")})
    if "error" in res:
        raise ArmToolchainError(f"the smoke test's model did not convert: {res['error']}")
    env = {**os.environ, "LD_LIBRARY_PATH": str(out / "lib"), "GLOG_minloglevel": "3"}
    argv = [str(out / "runner"), str(work / "model.nb"), "1", "0"]
    if not native(abi):
        env["QEMU_LD_PREFIX"] = f"/usr/{abi.triple}"
        argv = [shutil.which(abi.qemu) or abi.qemu, *argv]
    request = b"RUN1" + struct.pack("<4i", 1, 3, 32, 32) + bytes(4 * 3 * 32 * 32) + b"QUIT"
    p = subprocess.run(argv, input=request, capture_output=True, env=env, timeout=300)
    ok = p.stdout[:8] == b"RDY1OUT1" and struct.unpack("<ii", p.stdout[8:16]) == (1, 10)
    if p.returncode != 0 or not ok:
        lines = [ln for ln in p.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise ArmToolchainError(f"the new {abi.name} build failed its smoke test (exit "
                                f"{p.returncode}): {lines[-1][:300] if lines else 'no output'}")


def _version(cmd: str) -> str:
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (out.stdout.strip().splitlines() or ["unknown"])[0]
    return re.sub(r"\s+", " ", first)
