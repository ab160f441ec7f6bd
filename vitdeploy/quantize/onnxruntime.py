"""ONNX Runtime int8 recipes for vitdeploy's fp32 ``model.onnx`` (paddle2onnx + onnxslim).

``int8``: static QDQ, transformer-aware. Only weight layers are quantized (MatMul with a constant
B, Gemm, Conv): per-channel symmetric s8 weights, asymmetric u8 activations (u8 x s8 is the VNNI
kernel; s8 activations rely on ORT's s8->u8 rewrite, which misses pairs on LeViT and leaves
DequantizeLinear + float MatMul: 2.2x slower than fp32) calibrated at the 99.999th percentile,
which one hot pixel cannot stretch as it does a MinMax range. MatMul/Gemm outputs stay
float, so ORT fuses each to MatMulIntegerToFloat / QGemm without a requantize step. Attention's
activation x activation MatMuls, residual Adds, LayerNormalization, Softmax and GELU (Erf) stay
float: they hold the outliers int8 ranges cannot, and int8 buys no speed there.
``dynamic-int8``: ``quantize_dynamic`` on MatMul (DynamicQuantizeMatMul), no calibration.

The same inputs give byte-identical files: every intermediate lives in a TemporaryDirectory and
nothing random or time-based reaches the output (ORT's augmented calibration models do hold uuids
and timestamps; they never leave that directory)."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import CheckNotMet, OptionError, QuantizeError, first_line
from ..preprocess import spread_evenly
from ..quiet import quiet_stdout
from ..runtimes.base import physical_cores
from .calib import Calibration, EvalSet
from .recipes import modes
from .sensitivity_ort import Outcome, drop_points, fit_budget, rank_layers

ORT_MODES = modes("onnx")
STATIC_OPS = ("MatMul", "Gemm", "Conv")
DYNAMIC_OPS = ("MatMul",)  # ORT has no dynamic int8 Gemm (IntegerOps registry): the head stays float
PERCENTILE = 99.999
CALIB_BATCH = 8  # images per calibration run (the batch dim is dynamic)
SENSITIVITY_IMAGES = 16  # calibration images the budget's per-layer ablation runs on


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's histogram calibrators print to stdout and its quantizer logs warnings via ``logging``."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with quiet_stdout():
            yield
    finally:
        logging.disable(previous)


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise QuantizeError("onnxruntime is not installed: pip install onnxruntime") from None
    ort.set_default_logger_severity(3)  # sessions the quantization tools open too
    return ort


def _session(model: str | bytes):
    ort = _ort()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = physical_cores()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # a QDQ graph's exact int8 arithmetic, whatever this CPU's int8 kernels (without VNNI they
    # saturate): the accuracy measured, the layers ranked and so the artifact written are the
    # same on every machine (resources.INT8_DOT_FLAGS)
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _predictor(model: str | bytes, size: int = 32) -> Callable[[np.ndarray], np.ndarray]:
    """One session, batches of ``size`` through it."""
    sess = _session(model)
    name = sess.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run(None, {name: np.ascontiguousarray(batch[i:i + size], np.float32)})[0]
                               for i in range(0, len(batch), size)])

    return predict


def _run(model: str | bytes, batch: np.ndarray) -> np.ndarray:
    return _predictor(model)(batch)


def _reader(batch: np.ndarray, size: int = CALIB_BATCH):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """``calib.batch`` in slices of ``size`` under the model's input name ``x``; ``set_range``
        (in slices) lets ORT build its histograms a slice at a time (CalibStridedMinMax) instead
        of holding every image's activations at once (~160 MB an image for DeiT-base)."""

        def __init__(self) -> None:
            self.start, self.stop = 0, len(self)

        def get_next(self) -> dict | None:
            if self.start >= self.stop:
                return None
            chunk = batch[self.start * size:(self.start + 1) * size]
            self.start += 1
            return {"x": np.ascontiguousarray(chunk, np.float32)}

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.stop = start_index, min(end_index, len(self))

        def rewind(self) -> None:
            self.start, self.stop = 0, len(self)

        def __len__(self) -> int:
            return -(-len(batch) // size)

    return Reader()


def _preprocess(src: Path, dest: Path) -> None:
    """ORT's recommended pre-pass (shape inference, constant folding, MatMul+Add -> Gemm);
    symbolic shape inference fails on paddle2onnx graphs, ONNX shape inference does not."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet():
            quant_pre_process(str(src), str(dest), skip_symbolic_shape=True)
    except Exception as e:
        raise QuantizeError(f"ONNX Runtime's quantization pre-process failed on {src.name}: "
                          f"{first_line(e)}") from None


def _weight_layers(model_path: Path) -> tuple[list[str], list[str]]:
    """(weight layers to quantize, layers the recipe keeps float), graph order. Float: attention's
    activation x activation MatMuls, and a Conv reading the raw image (ViT's patch embedding: ORT
    cannot fuse it to QLinearConv, as the image also feeds Shape, so int8 there is only noise)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    inputs = {i.name for i in model.graph.input} - consts
    layers, kept = [], []
    for n in model.graph.node:
        if n.op_type not in STATIC_OPS or len(n.input) < 2:
            continue
        if n.input[1] not in consts or (n.op_type == "Conv" and n.input[0] in inputs):
            kept.append(n.name)
        else:
            layers.append(n.name)
    return layers, kept


def _recipe_static() -> dict:
    return {"format": "QDQ", "op_types": list(STATIC_OPS), "per_channel": True,
            "weight_type": "int8", "weight_symmetric": True,
            "activation_type": "uint8", "activation_symmetric": False,
            "calibration": {"method": "Percentile", "percentile": PERCENTILE, "batch": CALIB_BATCH,
                            "histogram": "per batch (CalibStridedMinMax=1)"},
            "attention_matmul": "float (only weight x activation MatMuls, as MatMulConstBOnly)",
            "gemm_output": "float (MatMulIntegerToFloat / QGemm); Conv output int8 (QLinearConv)",
            "float_ops": ["Add", "LayerNormalization", "Softmax", "Erf (GELU)", "Mul", "Div"],
            "pre_process": "quant_pre_process(skip_symbolic_shape=True)"}


def _recipe_dynamic() -> dict:
    return {"format": "IntegerOps (dynamic)", "op_types": list(DYNAMIC_OPS), "per_channel": False,
            "weight_type": "int8", "activation_type": "uint8, range computed per run",
            "calibration": None, "attention_matmul": "float (MatMulConstBOnly)",
            "float_ops": ["Gemm (classifier head)", "Add", "LayerNormalization", "Softmax",
                          "Erf (GELU)", "Conv (patch embedding)"],
            "pre_process": "quant_pre_process(skip_symbolic_shape=True)"}


def _quantize_static(pre: Path, out: Path, calib: Calibration, exclude: list[str],
                     cache: Path) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra: dict = {"WeightSymmetric": True, "ActivationSymmetric": False,
                   "CalibPercentile": PERCENTILE, "CalibStridedMinMax": 1,  # a slice at a time
                   # a float MatMul/Gemm output skips a requantize step and fuses to
                   # MatMulIntegerToFloat / QGemm; a Conv keeps its output Q to fuse to QLinearConv
                   "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
    kw: dict = {}
    if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        kw["calibration_cache_path"] = str(cache)  # newer ORT: calibrate once, re-quantize cheaply
    try:
        with _quiet():
            quantize_static(str(pre), str(out), _reader(calib.batch), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(STATIC_OPS), per_channel=True,
                            reduce_range=False, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                            calibrate_method=CalibrationMethod.Percentile, extra_options=extra, **kw)
    except Exception as e:
        raise QuantizeError(f"ONNX Runtime static quantization failed: {first_line(e)}") from None
    return out


def _quantize_dynamic(pre: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(str(pre), str(out), op_types_to_quantize=list(DYNAMIC_OPS),
                             per_channel=False, weight_type=QuantType.QInt8,
                             extra_options={"MatMulConstBOnly": True})
    except Exception as e:
        raise QuantizeError(f"ONNX Runtime dynamic quantization failed: {first_line(e)}") from None
    return out


def _check(src: Path, mode: str, calib: Calibration | None, eval_set: EvalSet | None,
           max_drop: float | None) -> None:
    if mode not in ORT_MODES:
        raise OptionError(f"unknown ONNX Runtime quantization mode {mode!r}; choose one of: "
                          f"{', '.join(ORT_MODES)}")
    if mode == "int8" and calib is None:
        raise OptionError("static int8 needs calibration images: pass --calib DIR")
    if mode == "int8" and len(calib.batch) == 0:
        raise OptionError("static int8 needs calibration images: the calibration set is empty")
    if max_drop is not None:
        if not 0 <= max_drop <= 100:
            raise OptionError(f"--max-drop {max_drop} is out of range; top-1 points in 0..100")
        if eval_set is None or len(eval_set.x) == 0:
            raise OptionError("--max-drop is measured on labelled images: pass --eval-data DIR")
    if not Path(src).is_file():
        raise QuantizeError(f"fp32 ONNX model not found: {src}")


def quantize_onnx(src: Path, dest: Path, mode: str, calib: Calibration | None = None, *,
                  eval_set: EvalSet | None = None, max_drop: float | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Quantize ``src`` (fp32 ONNX, input ``x``) into ``dest``; the manifest's record back.

    With ``eval_set`` the top-1 of fp32 and int8 is measured; with ``max_drop`` (top-1 points) as
    well, the most sensitive layers go back to float until the drop fits (CheckNotMet if not)."""
    say = progress or (lambda _m: None)
    src, dest = Path(src), Path(dest)
    _check(src, mode, calib, eval_set, max_drop)
    _ort()
    with tempfile.TemporaryDirectory(prefix="vitdeploy-ort-int8-") as tmp_dir:
        tmp = Path(tmp_dir)
        pre = tmp / "pre.onnx"
        say("int8: ONNX Runtime quantization pre-process")
        _preprocess(src, pre)
        layers: list[str] = []
        quantize: Callable[[list[str]], Path] | None = None  # static: layers kept float -> model
        if mode == "dynamic-int8":
            say("int8: dynamic quantization (MatMul weights int8, activations at run time)")
            first = Outcome(_quantize_dynamic(pre, tmp / "int8.onnx"), 0.0, 0.0)
            recipe = _recipe_dynamic()
        else:
            layers, float_by_recipe = _weight_layers(pre)
            say(f"int8: calibrating on {len(calib.batch)} images (percentile {PERCENTILE}), "
                f"quantizing {len(layers)} layers")

            def quantize(kept: list[str]) -> Path:  # re-quantizing reuses the calibration cache
                return _quantize_static(pre, tmp / "int8.onnx", calib, float_by_recipe + kept,
                                        tmp / "calib-cache.json")

            first = Outcome(quantize([]), 0.0, 0.0)
            recipe = {**_recipe_static(), "layers_quantized": len(layers),
                      "float_by_recipe": float_by_recipe}
        final, accuracy = first, None
        if eval_set is not None:
            final, accuracy = _measure(src, pre, first, layers, quantize, calib, eval_set,
                                       max_drop, recipe, say)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")
        shutil.copyfile(final.model, partial)
        os.replace(partial, dest)
    say(f"int8: wrote {dest}")
    return {"mode": mode, "recipe": recipe,
            "calibration": calib.to_record() if mode == "int8" and calib is not None else None,
            "kept_float": list(final.kept_float), "accuracy": accuracy}


def _measure(src: Path, pre: Path, first: Outcome, layers: list[str],
             quantize: Callable[[list[str]], Path] | None, calib: Calibration | None,
             eval_set: EvalSet, max_drop: float | None, recipe: dict,
             say: Callable[[str], None]) -> tuple[Outcome, dict]:
    """Top-1 of fp32 (ORT on ``src``) and int8 on ``eval_set``; over budget, the search."""

    def top1(path: Path) -> float:
        return eval_set.top1(_predictor(str(path)))

    say(f"int8: measuring top-1 on {len(eval_set.x)} labelled images (fp32 and int8)")
    fp32 = top1(src)
    first.top1 = top1(first.model)
    first.drop = drop_points(fp32, first.top1)
    final = first
    if max_drop is not None and first.drop > max_drop:
        if quantize is None or calib is None:
            raise CheckNotMet(f"dynamic int8 drops {first.drop:.2f} top-1 points > --max-drop "
                              f"{max_drop:g} and has no calibrated layers to fall back; try "
                              "--quantize int8 with --calib DIR")
        say(f"int8: drop {first.drop:.2f} points > budget {max_drop:g}: ranking the layers")
        subset = _subset(calib.batch)
        ranked = rank_layers(pre, first.model, layers, subset, _run, say)
        recipe["sensitivity"] = {"method": "logits SQNR (dB) gained with the layer alone in float",
                                 "images": len(subset),
                                 "top": [[n, round(g, 3)] for n, g in ranked[:8]]}
        final = fit_budget(first, fp32, max_drop, [n for n, _ in ranked], quantize, top1, say)
        recipe["budget_steps"] = final.steps
    return final, {"fp32_top1": round(fp32, 6), "int8_top1": round(final.top1, 6),
                   "drop_points": final.drop, "n": len(eval_set.x)}


def _subset(batch: np.ndarray) -> np.ndarray:
    """Evenly spread calibration images for the per-layer ablation (deterministic)."""
    return batch[spread_evenly(len(batch), SENSITIVITY_IMAGES)]
