"""``vitdeploy convert``: an export directory -> ONNX / OpenVINO IR artifact directory.

Adding a target is one module with ``convert(source, out_dir, **options) -> dict`` and one line
in ``TARGETS``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..artifacts import atomic_output_dir, check_output_dir, sha256, write_manifest
from ..errors import VitdeployError
from ..lite import convert as lite_target
from . import onnx as onnx_target
from . import openvino as openvino_target
from .source import Source, resolve_source

TARGETS: dict[str, Callable[..., dict]] = {
    "onnx": onnx_target.convert,
    "openvino": openvino_target.convert,
    "lite": lite_target.convert,
}
_TOOLS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxslim", "onnxruntime", "openvino")


@dataclass
class ConvertResult:
    out_dir: str
    target: str
    model: str | None
    seconds: float
    details: dict
    files: dict[str, str] = field(default_factory=dict)


def tool_versions() -> dict[str, str]:
    versions = {"vitdeploy": __version__, "python": platform.python_version()}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _num_classes(out: Path, source: Source) -> int:
    """From the source's manifest, or (a bare PaddleClas directory) by running the result once."""
    n = source.manifest.get("num_classes")
    if n:
        return int(n)
    from ..runtimes import detect_runtime

    found = detect_runtime(out)
    if found is None:
        return 1000
    import numpy as np

    from ..models import get_config

    size = get_config(source.zoo_model).input_size if source.zoo_model else 224
    with found[0](found[1]) as rt:
        return int(rt.predict(np.zeros((1, 3, size, size), np.float32)).shape[1])


def convert(src: str | Path, to: str, out: str | Path, *, opset: int | None = None,
            precision: str = "fp32", model: str | None = None, labels: str | Path | None = None,
            force: bool = False, progress: Callable[[str], None] | None = None,
            **target_options: object) -> ConvertResult:
    """``target_options`` go to the target (Lite: arch, quantize, fp16, weights)."""
    say = progress or (lambda _msg: None)
    if to not in TARGETS:
        raise VitdeployError(f"unknown target {to!r}; available: {', '.join(TARGETS)}")
    check_output_dir(out, force)
    source = resolve_source(src, model, labels)
    options = {"precision": precision, **{k: v for k, v in target_options.items() if v is not None}}
    if opset is not None:
        options["opset"] = opset
    start = time.perf_counter()
    with atomic_output_dir(out, force=force) as tmp:
        say(f"converting {source.model_file.name} to {to}")
        details = TARGETS[to](source, tmp, **options)
        n = _num_classes(tmp, source)
        source.write_metadata(tmp, n)
        src_files = {p.name: sha256(p) for p in (source.model_file, source.params_file) if p.is_file()}
        manifest = write_manifest(tmp, {
            "format": to,
            "model": source.model_name,
            "num_classes": n,
            "softmax": bool(source.manifest.get("softmax", False)),
            "input": source.manifest.get("input") or {"name": "x", "dtype": "float32"},
            "conversion": details,
            **({"lite": {"arch": details["arch"], "x86_twin": details.get("x86_twin"),
                         "x86_twin_weights": details.get("x86_twin_weights")}}
               if to == "lite" else {}),
            "source": {"dir": str(Path(src)), "kind": source.kind, "files": src_files},
            "versions": tool_versions(),
        })
    return ConvertResult(str(Path(out)), to, source.model_name, time.perf_counter() - start,
                         details, manifest["files"])
