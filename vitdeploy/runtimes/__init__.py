"""Runtime registry: adding a runtime is one module (a Runtime subclass: its artifact kind, model
file, stored-precision reader, settings and precision choices) plus one line in RUNTIMES; help
texts, detection and precision reading follow from the registry."""

from __future__ import annotations

from pathlib import Path

from ..artifact import artifact_kind
from ..errors import RuntimeUnavailableError
from .base import Runtime, physical_cores
from .lite import LiteRuntime
from .lite_arm import LiteArmRuntime
from .onnxruntime import OnnxRuntime
from .openvino import OpenVinoRuntime
from .paddle import PaddleRuntime

# Registry order is detection order: a directory's model file picks its runtime.
RUNTIMES: dict[str, type[Runtime]] = {r.name: r for r in (
    PaddleRuntime,
    OnnxRuntime,
    OpenVinoRuntime,
    LiteArmRuntime,
    LiteRuntime,
)}


def get_runtime(name: str) -> type[Runtime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise RuntimeUnavailableError(
            f"unknown runtime {name!r}; available: {', '.join(RUNTIMES)}"
        ) from None


def detect_runtime(directory: Path) -> tuple[type[Runtime], Path] | None:
    """The runtime of the directory's kind (``artifact.artifact_kind``: an ONNX file runs on ONNX
    Runtime, an IR on OpenVINO, a .nb on Lite), unless a runtime is named; None when it holds no
    model file that runtime can load here."""
    kind = artifact_kind(directory)
    for cls in RUNTIMES.values():  # registry order: for a Lite ARM build, its ARM kernels first
        if cls.kind == kind:
            path = cls.find_model(directory)
            if path is not None:
                return cls, path
    return None


def stored_precision(model_file: str | Path) -> str:
    """What ``model_file`` stores, read by the runtime of its format (its suffix); "unknown" for
    a format no runtime reads."""
    p = Path(model_file)
    for cls in RUNTIMES.values():
        if p.suffix.lower() in cls.suffixes:
            return cls.stored_precision(p)
    return "unknown"


__all__ = ["RUNTIMES", "Runtime", "detect_runtime", "get_runtime", "physical_cores",
           "stored_precision"]
