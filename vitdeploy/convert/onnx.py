"""Paddle inference model -> ONNX through paddle2onnx, then checked and cleaned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtifactError, ExportError
from ..options import choice, positive_int
from ..quantize.options import QuantizeOptions, run_recipe
from ..quiet import quiet_stdout
from .source import Source
from .target import Target

DEFAULT_OPSET = 17  # LayerNormalization is one op from opset 17 on
MIN_OPSET, MAX_OPSET = 11, 21
OUTPUT_NAMES = {False: "logits", True: "probs"}


@dataclass(frozen=True)
class Options(QuantizeOptions):
    opset: int = DEFAULT_OPSET
    precision: str = "fp32"  # fp16: fp16 weights and compute, fp32 input/output

    def validate(self, target: str) -> None:
        check_opset(self.opset)
        choice(target, "precision", self.precision, ("fp32", "fp16"))
        self.validate_quantize(target)


def check_opset(opset: int) -> None:
    positive_int(opset, "--opset", MIN_OPSET, MAX_OPSET, f" (default {DEFAULT_OPSET})")


def paddle_to_onnx(source: Source, dest: Path, opset: int = DEFAULT_OPSET,
                   precision: str = "fp32") -> dict:
    check_opset(opset)
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
        return finalize_onnx(raw, dest, softmax=_is_softmax(source), precision=precision)


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
    """Clean the graph (onnxslim), name the I/O (x -> logits/probs, symbolic 'batch'), check it;
    ``precision="fp16"`` stores weights and computes in half, with float32 input and output."""
    import onnx

    model = onnx.load(str(raw))
    try:
        import onnxslim

        with quiet_stdout():
            model = onnxslim.slim(model)
    except ImportError:
        pass
    if precision == "fp16":
        model = _to_fp16(model)
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
    model.metadata_props.add(key="producer", value="vitdeploy")
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    if os.path.getsize(dest) == 0:
        raise ExportError(f"writing {dest} failed")
    return {"nodes": len(graph.node), "op_types": sorted({n.op_type for n in graph.node}),
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))}


def _to_fp16(model):
    """fp16 initializers and arithmetic, float32 I/O (Casts at the edges). ONNX Runtime's own
    converter keeps ops without fp16 kernels in float32 (its default block list)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as e:  # noqa: BLE001  (a converter bug must be one line)
        raise ExportError(f"fp16 conversion failed: {type(e).__name__}: {e}") from None
    _toposort(model.graph)  # the converter appends its input Casts at the end of the node list
    return model


def _toposort(graph) -> None:
    """Order nodes so each comes after the producers of its inputs (the ONNX checker's rule)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = [n for n in pending if not set(n.input) <= ready]
        done = [n for n in pending if set(n.input) <= ready]
        if not done:
            raise ExportError(f"ONNX graph has a cycle or an unproduced input near node "
                              f"{rest[0].name or rest[0].op_type}")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    nodes = [type(n)() for n in ordered]
    for dst, src in zip(nodes, ordered):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(nodes)


def convert(source: Source, out: Path, options: Options,
            progress: Callable[[str], None] = lambda _m: None) -> dict:
    if source.kind != "paddle":
        raise ArtifactError(f"{source.directory} is already ONNX; convert from the Paddle export")
    if options.quantize is None:
        info = paddle_to_onnx(source, out / "model.onnx", options.opset, options.precision)
        return {"model_file": "model.onnx", "precision": options.precision, **info}

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        info = paddle_to_onnx(source, fp32, options.opset)
        progress(f"quantizing ({options.quantize}) with ONNX Runtime")
        record = run_recipe("onnx", fp32, out / "model.onnx", options, source, progress)
    return {"model_file": "model.onnx", "opset": info["opset"], "quantization": record}


TARGET = Target("onnx", "ONNX (fp32, fp16; int8: static QDQ or dynamic)", Options, convert)
