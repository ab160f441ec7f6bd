"""Private Debian sysroots for the ARM Linux bundles on an x86 host: the target's own OpenCV (and
its libraries) for the cross link, and a root for QEMU to load them from.

Invariant: nothing is installed on this machine. Debian's multiarch ``libopencv-*:arm64`` /
``:armhf`` packages conflict with the host's amd64 OpenCV (libgdal is not multi-arch), so
installing them would remove it; instead debootstrap's first stage downloads and unpacks the
packages into the cache (no maintainer script runs), once per target (~700 MB, ~1 minute).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitdeployError


class SysrootError(VitdeployError):
    """A sysroot cannot be made here (a missing tool, not Debian, a failed download)."""


@dataclass(frozen=True)
class Cross:
    target: str  # the bundle's --target
    debian_arch: str  # dpkg's name for it
    triple: str  # GNU triple: the cross compiler's prefix and the multiarch library folder
    machine: str  # uname -m of a board that runs the demo natively


CROSS = {c.target: c for c in (
    Cross("linux-arm64", "arm64", "aarch64-linux-gnu", "aarch64"),
    Cross("linux-armhf", "armhf", "arm-linux-gnueabihf", "armv7l"),
)}
OPENCV_MODULES = ("core", "imgproc", "imgcodecs")


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or ln.startswith("E:")]
    return " | ".join(errors[:2] or lines[-2:])[:400]


def _host_opencv_soversion() -> str:
    """The host OpenCV's soversion ("406" on bookworm): the target must get the same OpenCV, as
    the demo compiles against the host's headers."""
    for libdir in sorted(Path("/usr/lib").glob("*-linux-gnu")):
        for so in sorted(libdir.glob("libopencv_core.so.*")):
            if re.fullmatch(r"\d+", so.name.rsplit(".so.", 1)[1]):
                return so.name.rsplit(".so.", 1)[1]
    raise SysrootError("the host's OpenCV (libopencv_core.so.<version>) was not found: install "
                       "libopencv-dev (make sysdeps)")


def packages() -> tuple[str, ...]:
    """OpenCV for the demo; libgomp1 for Paddle Lite's ARM library (built with OpenMP)."""
    v = _host_opencv_soversion()
    return (*(f"libopencv-{m}{v}" for m in OPENCV_MODULES), "libstdc++6", "libgomp1")


def debian_release() -> tuple[str, str]:
    """(codename, mirror) of this Debian machine, from /etc/os-release and apt's sources."""
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                   if "=" in line)
    codename = release.get("VERSION_CODENAME", "").strip('"')
    uris: list[str] = []
    for src in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():  # deb822 "URIs:" and one-line "deb URL" entries
            m = re.match(r"^\s*(?:URIs:|deb(?:\s+\[[^]]*\])?)\s+(\S+)", line)
            if m:
                uris.append(m.group(1).rstrip("/"))
    mirror = next((u for u in uris if u.endswith("/debian")), "http://deb.debian.org/debian")
    if not codename:
        raise SysrootError("not a Debian machine (no VERSION_CODENAME in /etc/os-release): the ARM "
                           "sysroots are Debian's; set OpenCV_DIR to an OpenCV built for the board")
    return codename, mirror


def get_cross(target: str) -> Cross:
    if target not in CROSS:
        raise SysrootError(f"no sysroot for {target!r}; cross targets: {', '.join(CROSS)}")
    return CROSS[target]


def sysroot(target: str) -> Path:
    """The target's sysroot in the cache, made on first use."""
    cross = get_cross(target)
    codename, mirror = debian_release()
    pkgs = packages()
    key = hashlib.sha256(" ".join((*pkgs, "alternatives")).encode()).hexdigest()[:8]
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitdeploy" / \
        f"sysroot-{cross.debian_arch}-{codename}-{key}"
    if (root / ".complete").is_file():
        return root
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not debootstrap:
        raise SysrootError("the ARM sysroot needs debootstrap (Debian: apt-get install debootstrap, "
                           "or VITDEPLOY_SYSDEPS_ARM=1 make sysdeps)")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        p = subprocess.run([debootstrap, "--foreign", f"--arch={cross.debian_arch}",
                            "--variant=minbase", f"--include={','.join(pkgs)}", codename, str(tmp),
                            mirror], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SysrootError(f"debootstrap of the {cross.debian_arch} sysroot did not finish in 30 "
                           "minutes; check the network to the Debian mirror") from None
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SysrootError(f"debootstrap of the {cross.debian_arch} sysroot failed "
                           f"(it needs root): {_tail(p.stdout + p.stderr)}")
    for deb in sorted((tmp / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True, capture_output=True)
    # what the packages' postinst scripts would do (never run here): the alternatives that
    # put BLAS and LAPACK where the loader looks
    libdir = tmp / "usr" / "lib" / cross.triple
    for alt in ("blas", "lapack"):
        for so in sorted((libdir / alt).glob("lib*.so.*")):
            if not (libdir / so.name).exists():
                (libdir / so.name).symlink_to(Path(alt) / so.name)
    (tmp / ".complete").write_text(f"{codename} {mirror}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def opencv_dir(target: str, root: Path, include: Path, work: Path) -> Path:
    """An ``OpenCV_DIR`` naming the sysroot's three OpenCV modules (Debian's build for the target)
    with the host's OpenCV headers ``include`` (the same Debian release and OpenCV version)."""
    cross = get_cross(target)
    libdir = root / "usr" / "lib" / cross.triple
    libs = [next(iter(sorted(libdir.glob(f"libopencv_{m}.so.*"))), None) for m in OPENCV_MODULES]
    if not all(libs):
        raise SysrootError(f"{root} has no {cross.debian_arch} OpenCV; remove it and retry")
    out = Path(work) / f"opencv-{cross.debian_arch}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "OpenCVConfig.cmake").write_text(
        f"# Debian's {cross.debian_arch} OpenCV (core, imgproc, imgcodecs) in vitdeploy's private "
        "sysroot\nset(OpenCV_FOUND TRUE)\nset(OpenCV_VERSION 4)\n"
        f"set(OpenCV_INCLUDE_DIRS {include})\n"
        f"set(OpenCV_LIBS {' '.join(map(str, libs))})\n")
    return out


def build_env(target: str, include: Path, work: Path) -> dict[str, str]:
    """What build.sh and run.sh need for an ARM Linux target on an x86 host: the sysroot's OpenCV
    for the link (and its libraries to resolve theirs), and the sysroot for QEMU."""
    root = sysroot(target)
    # every folder of shared libraries (libgdal's libogdi sits in .../<triple>/ogdi): the cross
    # linker resolves the OpenCV libraries' own dependencies there
    libdirs = sorted({p.parent for top in ("lib", "usr/lib") for p in (root / top).rglob("*.so*")
                      if p.is_file()})
    return {"OpenCV_DIR": str(opencv_dir(target, root, include, work)),
            "LDFLAGS": "-Wl,-rpath-link," + ":".join(map(str, libdirs)),
            "QEMU_LD_PREFIX": str(root)}
