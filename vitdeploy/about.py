"""What produced a result: vitdeploy's version, the versions of the libraries involved, and the
machine's fingerprint. One owner for each; results (manifests, reference files, bench and
reports) record what these return. Ground layer: imports only resources."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib import metadata

from .resources import cpu_flags, cpu_name, physical_cores

__version__ = "0.1.0"

# the ISA extensions that decide fp32 / bf16 / int8 speed, as /proc/cpuinfo names them
ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "avx_vnni")


def package_version(name: str) -> str | None:
    if name == "vitdeploy":
        return __version__
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(packages: Iterable[str], *, python: bool = True,
             missing: bool = False) -> dict[str, str | None]:
    """vitdeploy's version, Python's (``python``) and each of ``packages`` that is installed
    (``missing``: those that are not too, as None)."""
    out: dict[str, str | None] = {"vitdeploy": __version__}
    if python:
        out["python"] = platform.python_version()
    for name in packages:
        v = package_version(name)
        if v is not None or missing:
            out[name] = v
    return out


def machine() -> dict:
    """The machine's fingerprint: CPU (as resources reads it, $VITDEPLOY_CPU_NAME/FLAGS
    included), cores, the ISA extensions that matter, platform and Python."""
    flags = cpu_flags()
    return {"cpu": cpu_name(), "arch": platform.machine(), "system": platform.system(),
            "physical_cores": physical_cores(), "logical_cpus": os.cpu_count(),
            "isa": [f for f in ISA if f in flags], "python": platform.python_version(),
            "platform": platform.platform()}
