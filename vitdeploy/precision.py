"""One meaning of precision.

* artifact precision: what the model file stores, read from the graph itself (QDQ / integer ops
  in ONNX, FakeQuantize or compressed constants in OpenVINO IR, fp16 initializers, Lite's
  weight-quantization attributes); a manifest only records it;
* compute precision: what the runtime really computed in (each Runtime reports it after load).

Parity judges with the preset of the looser of the two.
"""

from __future__ import annotations

from pathlib import Path

# Tightest to loosest tolerance: the order ``looser`` picks by.
ORDER = ("fp32", "int16", "fp16", "bf16", "int8")

_ONNX_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul",
                  "QLinearConv", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                  "DynamicQuantizeMatMul", "QAttention", "QGemm", "MatMulNBits"}
_PADDLE_INT8_MARKERS = (b"quantize_linear", b"fake_quantize", b"fake_channel_wise", b"quant_linear")


def batch_dependent(model_file: str | Path) -> bool:
    """Dynamic int8 (ONNX Runtime's quantize_dynamic) takes activation scales from each batch, so
    one input's output depends on what it is batched with; static QDQ does not."""
    p = Path(model_file)
    if p.suffix.lower() != ".onnx":
        return False
    import onnx

    graph = onnx.load(str(p), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    return "DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops


def looser(*precisions: str) -> str:
    known = [p for p in precisions if p in ORDER]
    return max(known, key=ORDER.index) if known else "fp32"


def _onnx(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(n.op_type in _ONNX_INT8_OPS for n in model.graph.node):
        return "int8"
    sizes = {"fp16": 0, "fp32": 0}
    for t in model.graph.initializer:
        kind = {onnx.TensorProto.FLOAT16: "fp16", onnx.TensorProto.FLOAT: "fp32"}.get(t.data_type)
        if kind:
            n = 1
            for d in t.dims:
                n *= d
            sizes[kind] += n
    return "fp16" if sizes["fp16"] > sizes["fp32"] else "fp32"


def _openvino_ir(path: Path) -> str:
    """IR xml: FakeQuantize (NNCF int8) or int8/uint8 weight constants -> int8; weights stored
    as f16 (compress_to_fp16) -> fp16. Counted by constant size, as the .bin holds them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return "unknown"
    sizes: dict[str, int] = {}
    for layer in root.iter("layer"):
        kind = layer.get("type")
        if kind == "FakeQuantize":
            return "int8"
        if kind == "Const":
            data = layer.find("data")
            if data is not None:
                et = data.get("element_type", "")
                sizes[et] = sizes.get(et, 0) + int(data.get("size", "0") or 0)
    if not sizes:
        return "fp32"
    biggest = max(sizes, key=sizes.get)
    return {"f16": "fp16", "i8": "int8", "u8": "int8", "i4": "int8", "u4": "int8",
            "bf16": "bf16"}.get(biggest, "fp32")


def _paddle(path: Path) -> str:
    data = path.read_bytes()
    return "int8" if any(m in data for m in _PADDLE_INT8_MARKERS) else "fp32"


def _lite(path: Path) -> str:
    from .lite.naive_buffer import read_nb

    precision = read_nb(path).weight_precision()
    return "fp32" if precision == "unknown" else precision


def artifact_precision(model_file: str | Path) -> str:
    """What ``model_file`` stores. A Lite twin (``model.x86.nb``) speaks for the ARM ``model.nb``
    beside it, which is the artifact the user ships."""
    p = Path(model_file)
    suffix = p.suffix.lower()
    if suffix == ".nb":
        primary = p.with_name("model.nb")
        return _lite(primary if primary.is_file() else p)
    if suffix == ".onnx":
        return _onnx(p)
    if suffix == ".xml":
        return _openvino_ir(p)
    if suffix in (".json", ".pdmodel"):
        return _paddle(p)
    return "unknown"
