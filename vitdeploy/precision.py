"""One meaning of precision.

* artifact precision: what the model file stores, read from the graph itself (QDQ / integer ops
  in ONNX, FakeQuantize or compressed constants in OpenVINO IR, fp16 initializers, Lite's
  weight-quantization attributes); a manifest only records it;
* compute precision: what the runtime really computed in (each Runtime reports it after load).

A result is judged as the looser of the two (``judged``), with that precision's tolerance preset
(``PRESETS``, ``tolerance_for``): parity, eval, bench, bundles' self-checks all ask here.
``check_requested`` is the one check of a precision asked of a runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import OptionError, PrecisionError

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


def judged(artifact_precision: str, compute_precision: str, *others: str) -> str:
    """The precision a result is judged as: the looser of what the model file stores and what
    the runtime computed in (an int8 model computed in fp32 is still int8's error), and of any
    ``others`` involved (a bundle's reference)."""
    return looser(artifact_precision, compute_precision, *others)


def check_requested(runtime: str, precision: str | None, choices: tuple[str, ...]) -> None:
    """A compute precision asked of ``runtime``: one of its ``choices``, else one line naming
    them (the one check, used by runtimes, serve and bench alike)."""
    if precision is not None and precision not in choices:
        offered = ", ".join(choices) or "none: it runs the model file as it is"
        raise PrecisionError(f"runtime {runtime!r} cannot be asked for precision {precision!r} "
                             f"(choices: {offered})")


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    min_top1_agreement: float
    max_abs: float | None = None  # optional absolute bound on any logit
    max_batch_diff: float | None = 1e-4  # same input, different batch size (None: not judged)


# Presets by the precision a runtime really computed in (overridable from the CLI).
PRESETS = {
    "fp32": Tolerance(0.99999, 1.0, None, 1e-4),
    "fp16": Tolerance(0.999, 0.98, None, 1e-2),
    "bf16": Tolerance(0.995, 0.95, None, 5e-2),
    "int8": Tolerance(0.98, 0.90, None, 5e-2),
    "int16": Tolerance(0.9999, 0.99, None, 1e-3),
}


# Each override's name -> (low, high): validated before anything runs, since a NaN or an
# out-of-range bound would make every comparison pass.
_BOUNDS = {"min_cosine": (-1.0, 1.0), "min_top1_agreement": (0.0, 1.0),
           "max_abs": (0.0, float("inf")), "max_batch_diff": (0.0, float("inf"))}


def validate_overrides(overrides: dict | None) -> dict:
    out = {}
    for name, value in (overrides or {}).items():
        if name not in _BOUNDS:
            raise OptionError(f"unknown tolerance {name!r}; available: {', '.join(_BOUNDS)}")
        lo, hi = _BOUNDS[name]
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise OptionError(f"{flag} {value} is out of range; use a finite number in "
                                 f"[{lo:g}, {hi:g}]")
        out[name] = float(value)
    return out


def tolerance_for(artifact_precision: str, compute_precision: str,
                  overrides: dict | None = None) -> tuple[str, Tolerance]:
    """The preset of the looser of what is stored and what was computed, then the overrides."""
    judged_as = judged(artifact_precision, compute_precision)
    return judged_as, replace(preset(judged_as), **(overrides or {}))


def preset(precision: str) -> Tolerance:
    """The tolerance preset of a judged precision (fp32's for one without a preset)."""
    return PRESETS.get(precision, PRESETS["fp32"])
