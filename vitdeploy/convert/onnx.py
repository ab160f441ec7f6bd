"""Paddle inference model -> ONNX through paddle2onnx, then checked and cleaned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ArtifactError, ExportError
from ..quiet import quiet_stdout
from .source import Source

DEFAULT_OPSET = 17  # LayerNormalization is one op from opset 17 on
MIN_OPSET = 11
OUTPUT_NAMES = {False: "logits", True: "probs"}


def paddle_to_onnx(source: Source, dest: Path, opset: int = DEFAULT_OPSET) -> dict:
    if not MIN_OPSET <= opset <= 21:
        raise ExportError(f"--opset {opset} is out of range; use {MIN_OPSET}..21 (default {DEFAULT_OPSET})")
    _preflight(source)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        proc = subprocess.run(
            [sys.executable, "-m", "vitdeploy.convert._p2o", str(source.model_file),
             str(source.params_file), str(raw), str(opset)],
            capture_output=True, text=True, env={**os.environ, "GLOG_minloglevel": "2"})
        if proc.returncode != 0 or not raw.is_file():
            hint = ("; re-export it from the checkpoint with 'vitdeploy export'"
                    if source.model_file.suffix == ".pdmodel" else "")
            raise ExportError(f"paddle2onnx failed on {source.model_file}: {_reason(proc)}{hint}")
        return finalize_onnx(raw, dest, softmax=_is_softmax(source))


def _reason(proc: subprocess.CompletedProcess) -> str:
    if proc.returncode < 0:
        how = f"it crashed (signal {-proc.returncode})"
    else:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                 if "ERROR" in ln or "Error" in ln]
        how = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip()[:300] if lines else \
            f"exit code {proc.returncode}"
    return how


def _preflight(source: Source) -> None:
    """Catch a corrupt program with a clear message before paddle2onnx (which exits the process)."""
    if source.model_file.suffix == ".json":
        try:
            with open(source.model_file, encoding="utf-8") as f:
                program = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ExportError(f"paddle2onnx failed: {source.model_file} is not a readable Paddle "
                              f"program ({type(e).__name__}: {e}); re-export it") from None
        if not isinstance(program, dict) or "program" not in program:
            raise ExportError(f"paddle2onnx failed: {source.model_file} is not a PIR program")


def _is_softmax(source: Source) -> bool:
    return bool(source.manifest.get("softmax", False))


def finalize_onnx(raw: Path, dest: Path, softmax: bool = False, precision: str = "fp32") -> dict:
    """Clean the graph (onnxslim), name the I/O (x -> logits/probs, symbolic 'batch'), check it."""
    import onnx

    model = onnx.load(str(raw))
    try:
        import onnxslim

        with quiet_stdout():
            model = onnxslim.slim(model)
    except ImportError:
        pass
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ArtifactError(f"expected one input and one output, found {len(graph.input)} and "
                            f"{len(graph.output)}")
    old_out, new_out = graph.output[0].name, OUTPUT_NAMES[softmax]
    for node in graph.node:
        node.output[:] = [new_out if o == old_out else o for o in node.output]
    graph.output[0].name = new_out
    for value in (graph.input[0], graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del model.metadata_props[:]
    for key, value in (("vitdeploy_precision", precision), ("producer", "vitdeploy")):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    if os.path.getsize(dest) == 0:
        raise ExportError(f"writing {dest} failed")
    return {"nodes": len(graph.node), "op_types": sorted({n.op_type for n in graph.node}),
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))}


def convert(source: Source, out: Path, opset: int = DEFAULT_OPSET, **_: object) -> dict:
    if source.kind != "paddle":
        raise ArtifactError(f"{source.directory} is already ONNX; convert from the Paddle export")
    return {"model_file": "model.onnx", **paddle_to_onnx(source, out / "model.onnx", opset)}
