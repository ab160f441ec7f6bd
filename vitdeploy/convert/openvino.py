"""ONNX -> OpenVINO IR (model.xml + model.bin). OpenVINO cannot read Paddle 3's PIR json, so a
Paddle source goes through ONNX first (in a temp dir)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExportError, first_line
from ..options import choice
from ..quantize.options import QuantizeOptions, run_recipe
from ..quiet import quiet_stdout
from .onnx import DEFAULT_OPSET, check_opset, paddle_to_onnx
from .source import Source
from .target import Target


@dataclass(frozen=True)
class Options(QuantizeOptions):
    opset: int = DEFAULT_OPSET  # of the intermediate ONNX
    precision: str = "fp32"  # fp16: weights compressed to half; compute is the runtime's choice

    def validate(self, target: str) -> None:
        check_opset(self.opset)
        choice(target, "precision", self.precision, ("fp32", "fp16"))
        self.validate_quantize(target)


def convert(source: Source, out: Path, options: Options,
            progress: Callable[[str], None] = lambda _m: None) -> dict:
    if options.quantize is None:
        return _to_ir(source, out, options)
    with tempfile.TemporaryDirectory() as tmp:
        details = _to_ir(source, Path(tmp), options)
        progress(f"quantizing ({options.quantize}) with NNCF")
        record = run_recipe("openvino", Path(tmp) / "model.xml", out / "model.xml", options,
                            source, progress)
    return {**details, "weights": "int8", "quantization": record}


def _to_ir(source: Source, out: Path, options: Options) -> dict:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        if source.kind == "paddle":
            onnx_file = Path(tmp) / "model.onnx"
            paddle_to_onnx(source, onnx_file, options.opset)
        else:
            onnx_file = source.model_file
        try:
            with quiet_stdout():
                model = ov.convert_model(str(onnx_file))
                ov.save_model(model, str(out / "model.xml"),
                              compress_to_fp16=options.precision == "fp16")
        except Exception as e:
            raise ExportError(f"OpenVINO conversion failed: {first_line(e)}") from None
    return {"model_file": "model.xml", "weights": options.precision, "via": "onnx",
            "opset": options.opset}


TARGET = Target("openvino", "OpenVINO IR (fp32, fp16 weights; int8: NNCF)", Options, convert)
