"""OpenVINO int8: NNCF post-training quantization of an fp32 IR, with an optional accuracy budget.

The recipe is NNCF's transformer one (MIXED preset: int8 weights symmetric per channel,
activations asymmetric; LayerNorm, Softmax and GELU stay float) with SmoothQuant off. Measured:
every alpha keeps the sample's top-1 (0.9917); on DeiT tiny/base (seeded weights) SmoothQuant off
is the closest to fp32 and NNCF's default 0.95 the furthest (1 - cosine 7.9e-4 vs 11.5e-4 tiny,
9.0e-4 vs 13.3e-4 base); and NNCF's accuracy control restores a reverted layer's weights but not
SmoothQuant's activation scales, which broke the sample (26% top-1) once layers were reverted.
Without ``model_type=TRANSFORMER`` NNCF quantizes LayerNorm inputs and more: cosine 0.949 on
DeiT tiny instead of 0.999.

With a budget (``max_drop`` top-1 points on ``eval_set``), NNCF's accuracy control ranks the
quantized layers by how much each costs and reverts the worst to float until the drop fits; the
drop is then measured again here, on the saved IR, through vitdeploy's OpenVINO runtime.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckNotMet, OptionError, QuantizeError, first_line
from ..quiet import quiet_stdout
from .calib import Calibration, EvalSet
from .recipes import modes

OV_MODES = modes("openvino")

# SmoothQuant alpha for MatMul: -1 turns SmoothQuant off (see the module docstring).
SMOOTH_QUANT_ALPHA = -1.0
FAST_BIAS_CORRECTION = True  # full bias correction: same cosine, 3x slower (DeiT tiny)
# Ops whose int8 weights or FakeQuantize-fed inputs make them "quantized layers".
_LAYER_TYPES = {"MatMul", "Convolution", "GroupConvolution", "ScaledDotProductAttention"}
_SHAPE_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert"}
_INT_TYPES = {"i8", "u8", "i4", "u4"}
_AUTO_NAME = re.compile(r"^([A-Za-z]+)_\d+$")


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda _m: None)


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs and draws progress bars on stdout, which must stay clean for --json."""
    import nncf
    from nncf.common.logging import nncf_logger

    level = nncf_logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with quiet_stdout():
            yield
    finally:
        nncf_logger.setLevel(level)


@contextlib.contextmanager
def _exact_int8_compiles() -> Iterator[None]:
    """NNCF's accuracy control compiles every candidate with ``openvino.compile_model`` and ranks
    layers by what it computes. On a CPU whose int8 kernels saturate (no VNNI), those compiles get
    low-precision transformations off: the exact int8 arithmetic that vitdeploy's runtime computes
    there and a VNNI CPU computes natively, so the layers reverted (and the IR written) do not
    depend on the converting machine's kernels."""
    import openvino as ov

    from ..resources import exact_int8_kernels

    if exact_int8_kernels():
        yield
        return
    real = ov.compile_model

    def exact(model: Any, device_name: Any = None, config: Any = None, **kw: Any) -> Any:
        return real(model, device_name, {**(config or {}), "LP_TRANSFORMS_MODE": False}, **kw)

    ov.compile_model = exact
    try:
        yield
    finally:
        ov.compile_model = real


def _check_args(mode: str, calib: Calibration, eval_set: EvalSet | None,
                max_drop: float | None) -> None:
    if mode not in OV_MODES:
        raise OptionError(f"unknown OpenVINO quantization mode {mode!r}; choose one of: "
                          f"{', '.join(OV_MODES)}")
    if calib.batch.ndim != 4 or not len(calib.batch):
        raise OptionError(f"calibration batch must be [N, 3, H, W] with N >= 1, got "
                          f"{list(calib.batch.shape)}")
    if max_drop is not None:
        if isinstance(max_drop, bool) or not 0 <= float(max_drop) <= 100:
            raise OptionError(f"--max-drop {max_drop} is out of range; use 0..100 top-1 points")
        if eval_set is None or not len(eval_set.x):
            raise OptionError("an accuracy budget (--max-drop) needs labelled evaluation images "
                              "(--eval-data DIR)")


def _read(src_xml: Path) -> Any:
    import openvino as ov

    if not Path(src_xml).is_file():
        raise QuantizeError(f"OpenVINO IR not found: {src_xml}")
    try:
        return ov.Core().read_model(str(src_xml))
    except Exception as e:
        raise QuantizeError(f"OpenVINO cannot read {src_xml}: {first_line(e)}") from None


def _check_input(model: Any, batch: np.ndarray, what: str) -> None:
    shape = model.input(0).get_partial_shape()
    if shape.rank.is_static and (len(shape) != batch.ndim or any(
            d.is_static and d.get_length() != n for d, n in zip(shape[1:], batch.shape[1:]))):
        raise OptionError(f"{what} images are {list(batch.shape[1:])} but the model takes {shape}; "
                          "preprocess them with the artifact's inference.yml")


def _recipe(n: int) -> dict[str, Any]:
    import nncf

    return {
        "tool": "nncf", "nncf": nncf.__version__, "model_type": "transformer", "preset": "mixed",
        "smooth_quant_alpha": None if SMOOTH_QUANT_ALPHA < 0 else SMOOTH_QUANT_ALPHA,
        "subset_size": n, "fast_bias_correction": FAST_BIAS_CORRECTION,
        "activations": "int8 per-tensor asymmetric", "weights": "int8 per-channel symmetric",
        "target_device": "any",
    }


def _nncf_kwargs(n: int) -> dict[str, Any]:
    import nncf

    return {
        "preset": nncf.QuantizationPreset.MIXED, "model_type": nncf.ModelType.TRANSFORMER,
        "subset_size": n, "fast_bias_correction": FAST_BIAS_CORRECTION,
    }


def _advanced() -> Any:
    import nncf

    return nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA))


def _rows(batch: np.ndarray) -> list[np.ndarray]:
    # One image per item: NNCF's transformer statistics are per sample (it warns on batches).
    return [np.ascontiguousarray(batch[i:i + 1], np.float32) for i in range(len(batch))]


def _feeds_from(out: Any, depth: int = 4) -> bool:
    """Whether an input comes from a FakeQuantize or an int8 weight, through shape-only ops or
    the weight decompression chain (Convert, Subtract, Multiply by a scale)."""
    node = out.get_node()
    kind = node.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind == "Constant":
        return node.get_output_element_type(0).get_type_name() in _INT_TYPES
    if depth == 0:
        return False
    if kind in _SHAPE_OPS:
        return _feeds_from(node.input(0).get_source_output(), depth - 1)
    if kind in ("Subtract", "Multiply"):  # a dequantization: one side is a Convert of an int8
        return any(i.get_source_output().get_node().get_type_name() == "Convert"
                   and _feeds_from(i.get_source_output(), depth - 1) for i in node.inputs())
    return False


def quantized_layers(model: Any) -> list[str]:
    """MatMul / Convolution / attention layers computing in int8, in graph order."""
    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() in _LAYER_TYPES
            and any(_feeds_from(i.get_source_output()) for i in op.inputs())]


def _top1(xml: Path, eval_set: EvalSet) -> float:
    """Top-1 through vitdeploy's own OpenVINO runtime: f32 compute, LATENCY, physical cores."""
    from ..runtimes.openvino import OpenVinoRuntime

    rt = OpenVinoRuntime(xml, precision="fp32")
    rt.load()
    try:
        return eval_set.top1(rt.predict)
    finally:
        rt.close()


def _validation(eval_set: EvalSet) -> tuple[Any, Callable[[Any, Any], tuple[float, list[float]]]]:
    """NNCF's validation data (one image per item) and a per-item top-1 for its ranking."""
    import nncf

    items = [(eval_set.x[i:i + 1], int(eval_set.y[i])) for i in range(len(eval_set.x))]

    def validate(compiled: Any, data: Any) -> tuple[float, list[float]]:
        hits = [float(np.argmax(compiled(x)[0]) == y) for x, y in data]
        return (sum(hits) / len(hits) if hits else 0.0), hits

    return nncf.Dataset(items), validate


def _names(layers: list[str], show: int = 4) -> str:
    if not layers:
        return "no layers"
    more = f" and {len(layers) - show} more" if len(layers) > show else ""
    return f"{len(layers)} layers ({', '.join(layers[:show])}{more})"


def _over(drop: float, max_drop: float) -> bool:
    return drop > max_drop + 1e-9  # top-1 is a ratio of counts: ignore float noise at the edge


def _stable_names(model: Any, source: set[str]) -> None:
    """OpenVINO names new nodes from a process-wide counter ("Constant_114933"): renumber the
    ones the source lacks in graph order, so the same inputs give the same .xml bytes."""
    counts: dict[str, int] = {}
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        match = _AUTO_NAME.match(name)
        if name in source or not match:
            continue
        k = counts.get(match.group(1), 0)
        counts[match.group(1)] = k + 1
        op.set_friendly_name(f"{match.group(1)}_q{k}")


def _save(model: Any, dest_xml: Path, source: set[str]) -> None:
    import openvino as ov

    _stable_names(model, source)
    dest_xml.parent.mkdir(parents=True, exist_ok=True)
    try:
        ov.save_model(model, str(dest_xml), compress_to_fp16=False)
    except Exception as e:
        raise QuantizeError(f"cannot write {dest_xml}: {first_line(e)}") from None


def quantize_ir(src_xml: Path, dest_xml: Path, mode: str, calib: Calibration, *,
                eval_set: EvalSet | None = None, max_drop: float | None = None,
                progress: Callable[[str], None] | None = None) -> dict:
    """Quantize ``src_xml`` (fp32 IR) into ``dest_xml``; the manifest's record of how.

    With ``eval_set`` the fp32 and int8 top-1 are measured; with ``max_drop`` too, layers are
    reverted to float until the drop is within it, else CheckNotMet."""
    _check_args(mode, calib, eval_set, max_drop)
    import nncf

    say = _say(progress)
    src_xml, dest_xml = Path(src_xml), Path(dest_xml)
    model = _read(src_xml)
    source = {op.get_friendly_name() for op in model.get_ops()}
    _check_input(model, calib.batch, "calibration")
    if eval_set is not None:
        _check_input(model, eval_set.x, "evaluation")
    n = len(calib.batch)
    calibration = nncf.Dataset(_rows(calib.batch))
    say(f"quantizing {src_xml.name} to int8 with NNCF {nncf.__version__} "
        f"({n} calibration images)")
    try:
        with _quiet_nncf():
            quantized = nncf.quantize(model, calibration, advanced_parameters=_advanced(),
                                      **_nncf_kwargs(n))
    except Exception as e:
        raise QuantizeError(f"NNCF quantization failed: {first_line(e)}") from None
    planned = quantized_layers(quantized)
    _save(quantized, dest_xml, source)
    record: dict[str, Any] = {"mode": mode, "recipe": _recipe(n), "calibration": calib.to_record(),
                              "quantized_layers": len(planned), "kept_float": [], "accuracy": None}
    if eval_set is None:
        return record

    say(f"measuring top-1 of fp32 and int8 on {len(eval_set.x)} images")
    fp32 = _top1(src_xml, eval_set)
    int8 = _top1(dest_xml, eval_set)
    drop = (fp32 - int8) * 100
    before: float | None = None
    if max_drop is not None and _over(drop, max_drop):
        # NNCF re-quantizes the same way (deterministic), ranks layers on the evaluation images
        # and reverts the costliest to float until its own measure of the drop fits the budget.
        before = int8
        say(f"int8 loses {drop:.2f} top-1 points (budget {max_drop:g}): reverting the most "
            "sensitive layers to float")
        dataset, validate = _validation(eval_set)
        try:
            with _quiet_nncf(), _exact_int8_compiles():
                quantized = nncf.quantize_with_accuracy_control(
                    _read(src_xml), calibration, dataset, validate, max_drop=max_drop / 100,
                    drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=_advanced(),
                    **_nncf_kwargs(n))
        except Exception as e:
            raise QuantizeError(f"NNCF accuracy control failed: {first_line(e)}") from None
        record["recipe"]["accuracy_control"] = {"max_drop": max_drop, "drop_type": "absolute"}
        final = set(quantized_layers(quantized))
        record["kept_float"] = [name for name in planned if name not in final]
        _save(quantized, dest_xml, source)
        int8 = _top1(dest_xml, eval_set)
        drop = (fp32 - int8) * 100
    record["accuracy"] = {"fp32_top1": round(fp32, 6), "int8_top1": round(int8, 6),
                          "drop_points": round(drop, 4), "n": len(eval_set.x)}
    if max_drop is not None:
        record["accuracy"]["max_drop"] = max_drop
        if before is not None:  # what every layer in int8 scored, before accuracy control
            record["accuracy"]["int8_top1_all_layers"] = round(before, 6)
        if _over(drop, max_drop):
            for f in (dest_xml, dest_xml.with_suffix(".bin")):  # never leave a model that failed
                f.unlink(missing_ok=True)
            raise CheckNotMet(f"int8 top-1 {int8:.4f} is {drop:.2f} points below fp32 {fp32:.4f} "
                              f"on {len(eval_set.x)} images, over the --max-drop {max_drop:g} "
                              f"budget even with {_names(record['kept_float'])} kept in float")
    return record
