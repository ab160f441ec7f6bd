"""What kind of artifact a directory is, and where its model file lies: the one place that knows
the file names each format uses (runtimes, conversion and bundles ask here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = ("paddle", "onnx", "openvino", "lite")
PADDLE_PROGRAMS = ("inference.json", "inference.pdmodel")  # Paddle 3's PIR json, or legacy
PADDLE_PARAMS = ".pdiparams"
IR, NB = "model.xml", "model.nb"
NB_TWIN = "model.x86.nb"  # the x86 build of an ARM .nb, which runs on this machine


def find_paddle_program(directory: Path) -> Path | None:
    for name in PADDLE_PROGRAMS:
        if (directory / name).is_file():
            return directory / name
    return None


def find_onnx(directory: Path) -> Path | None:
    """``model.onnx``, else the directory's one .onnx file."""
    if (directory / "model.onnx").is_file():
        return directory / "model.onnx"
    found = sorted(directory.glob("*.onnx"))
    return found[0] if len(found) == 1 else None


def find_ir(directory: Path) -> Path | None:
    return directory / IR if (directory / IR).is_file() else None


def find_nb(directory: Path) -> Path | None:
    return directory / NB if (directory / NB).is_file() else None


def artifact_kind(directory: str | Path, manifest: dict[str, Any] | None = None) -> str | None:
    """The artifact's kind: its manifest's ``format`` when it names one of KINDS, else from the
    files it holds (a Paddle program first: a PaddleClas export has no manifest). None when it
    holds no model file of any kind."""
    d = Path(directory)
    fmt = (manifest or {}).get("format")
    if fmt in KINDS:
        return fmt
    for kind, find in (("paddle", find_paddle_program), ("onnx", find_onnx), ("openvino", find_ir),
                       ("lite", find_nb)):
        if find(d) is not None:
            return kind
    return None
