"""ONNX -> OpenVINO IR (model.xml + model.bin). OpenVINO cannot read Paddle 3's PIR json, so a
Paddle source goes through ONNX first (in a temp dir)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ExportError, first_line
from ..quiet import quiet_stdout
from .onnx import DEFAULT_OPSET, paddle_to_onnx
from .source import Source

PRECISIONS = ("fp32", "fp16")


def convert(source: Source, out: Path, opset: int = DEFAULT_OPSET, precision: str = "fp32",
            **_: object) -> dict:
    import openvino as ov

    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r} is not supported for OpenVINO IR; use fp32 or fp16")
    with tempfile.TemporaryDirectory() as tmp:
        if source.kind == "paddle":
            onnx_file = Path(tmp) / "model.onnx"
            paddle_to_onnx(source, onnx_file, opset)
        else:
            onnx_file = source.model_file
        try:
            with quiet_stdout():
                model = ov.convert_model(str(onnx_file))
                ov.save_model(model, str(out / "model.xml"), compress_to_fp16=precision == "fp16")
        except Exception as e:
            raise ExportError(f"OpenVINO conversion failed: {first_line(e)}") from None
    return {"model_file": "model.xml", "weights": precision, "via": "onnx", "opset": opset}
