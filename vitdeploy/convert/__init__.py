"""``vitdeploy convert``: an export directory -> ONNX / OpenVINO IR / Paddle Lite artifact.

Adding a target is one module declaring a ``TARGET`` (target.py: a typed ``Options`` dataclass,
``convert(source, out_dir, options, progress) -> dict``, optionally a manifest section) and one
line in ``TARGETS``; help texts and option checks come from the registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..about import versions
from ..artifact import atomic_output_dir, check_output_dir, sha256, write_manifest
from ..errors import OptionError
from ..options import TargetOptions, build_options
from ..runtimes import stored_precision
from . import lite, onnx, openvino
from .source import Source, resolve_source
from .target import Target

TARGETS: dict[str, Target] = {t.name: t for t in (
    onnx.TARGET,
    openvino.TARGET,
    lite.TARGET,
)}
_TOOLS = ("paddlepaddle", "paddle2onnx", "onnx", "onnxslim", "onnxruntime", "openvino", "nncf")


@dataclass
class ConvertResult:
    out_dir: str
    target: str
    model: str | None
    seconds: float
    details: dict
    files: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"  # what the written model stores, read from its graph


def tool_versions() -> dict[str, str]:
    return versions(_TOOLS)  # type: ignore[return-value]


def _num_classes(out: Path, source: Source) -> int:
    """From the source's manifest, or (a bare PaddleClas directory) by running the result once."""
    n = source.manifest.get("num_classes") or source.info.num_classes
    if n:
        return int(n)
    from ..runtimes import detect_runtime

    found = detect_runtime(out)
    if found is None:
        return 1000
    import numpy as np

    size = source.info.preprocess.crop_size
    with found[0](found[1]) as rt:
        return int(rt.predict(np.zeros((1, 3, size, size), np.float32)).shape[1])


def make_options(to: str, given: TargetOptions | Mapping[str, object] | None = None) -> TargetOptions:
    """The typed options of target ``to``; an option it does not honour is an error."""
    if to not in TARGETS:
        raise OptionError(f"unknown target {to!r}; available: {', '.join(TARGETS)}")
    return build_options(to, TARGETS[to].options, given)


def convert(src: str | Path, to: str, out: str | Path,
            options: TargetOptions | Mapping[str, object] | None = None, *,
            model: str | None = None, labels: str | Path | None = None, force: bool = False,
            verify: bool = True, progress: Callable[[str], None] | None = None,
            **option_values: object) -> ConvertResult:
    """``options`` (or keyword ``option_values``) are the target's typed options, e.g.
    ``convert(src, "lite", out, arch="arm8")``; one that the target lacks is an error."""
    say = progress or (lambda _msg: None)
    if options is not None and option_values:
        raise OptionError("pass target options either as an options object or as keywords, not both")
    opts = make_options(to, options if options is not None else option_values)
    inputs = (src, labels, *(getattr(opts, n, None) for n in ("weights", "calib", "eval_data")))
    check_output_dir(out, force, inputs=inputs)
    source = resolve_source(src, model, labels, verify=verify)
    target = TARGETS[to]
    start = time.perf_counter()
    with atomic_output_dir(out, force=force, inputs=inputs) as tmp:
        say(f"converting {source.model_file.name} to {to}")
        details = target.convert(source, tmp, opts, say)
        n = _num_classes(tmp, source)
        source.write_metadata(tmp, n)
        src_files = {p.name: sha256(p) for p in (source.model_file, source.params_file) if p.is_file()}
        manifest = write_manifest(tmp, {
            "format": to,
            "model": source.model_name,
            "num_classes": n,
            "softmax": bool(source.manifest.get("softmax", False)),
            "input": source.manifest.get("input") or {"name": "x", "dtype": "float32"},
            "options": opts.to_dict(),
            "precision": stored_precision(tmp / details["model_file"]),
            "conversion": details,
            **({"quantization": details["quantization"]} if "quantization" in details else {}),
            **target.manifest_section(details),
            "source": {"dir": str(Path(src)), "kind": source.kind, "files": src_files},
            "versions": tool_versions(),
        })
    return ConvertResult(str(Path(out)), to, source.model_name, time.perf_counter() - start,
                         details, manifest["files"], manifest["precision"])
