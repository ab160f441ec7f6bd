"""The accuracy budget for ONNX Runtime int8: rank the quantized layers by their MEASURED cost, then
put the most costly back in float (1, 2, 4, 8 ... of them) until top-1 is within budget.

A layer's cost is what the int8 model's logits gain, in SQNR dB on a calibration subset, when that
one layer alone goes back to float in the QDQ graph (a graph edit, no re-quantization). Local
per-layer errors from qdq_loss_debug (each layer's input ``qdq_err`` + weight SQNR, or its output
SQNR against the float model) were measured as rankings too: Spearman -0.5..0.0 against this
ablation on the sample and DeiT-tiny, and floating back their top 8 layers gained DeiT-tiny's logits
+0.5 dB where this ranking's top 8 gained +4.2 dB. What matters is how a layer's noise travels to
the output (the classifier head's small local error lands on the logits unattenuated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckNotMet

if TYPE_CHECKING:
    import onnx


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio, as onnxruntime.quantization.qdq_loss_debug computes it."""
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

    return float(compute_signal_to_quantization_noice_ratio(ref, test))


def float_back(qdq: onnx.ModelProto, float_model: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """A copy of the QDQ model with ``layer`` reading its float inputs again (the float model's
    activations and weights), every other layer still int8: no re-quantization needed."""
    model = type(qdq)()
    model.CopyFrom(qdq)
    node = next(n for n in model.graph.node if n.name == layer)
    src = next(n for n in float_model.graph.node if n.name == layer)
    del node.input[:]
    node.input.extend(src.input)
    # a Conv/Gemm bias keeps its name as its int32 DequantizeLinear's output: near-exact, keep it
    have = {i.name for i in model.graph.initializer} | {o for n in model.graph.node for o in n.output}
    model.graph.initializer.extend(i for i in float_model.graph.initializer
                                   if i.name in src.input and i.name not in have)
    return model


def rank_layers(float_path: Path, qdq_path: Path, layers: list[str], batch: np.ndarray,
                run: Callable[[bytes, np.ndarray], np.ndarray],
                progress: Callable[[str], None]) -> list[tuple[str, float]]:
    """``(layer, dB gained when it alone is float)``, most sensitive first (ties by name: stable)."""
    import onnx

    float_model, qdq = onnx.load(str(float_path)), onnx.load(str(qdq_path))
    ref = run(float_model.SerializeToString(), batch)
    base = sqnr_db(ref, run(qdq.SerializeToString(), batch))
    gains = []
    for i, layer in enumerate(layers):
        if i % 8 == 0:
            progress(f"accuracy budget: measuring layer sensitivity {i + 1}/{len(layers)}")
        out = run(float_back(qdq, float_model, layer).SerializeToString(), batch)
        gains.append((layer, sqnr_db(ref, out) - base))
    return sorted(gains, key=lambda g: (-g[1], g[0]))


@dataclass
class Outcome:
    model: Path
    top1: float
    drop: float  # top-1 points below fp32
    kept_float: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # the search, for the manifest


def drop_points(fp32_top1: float, int8_top1: float) -> float:
    return round((fp32_top1 - int8_top1) * 100, 4)


def fit_budget(first: Outcome, fp32_top1: float, max_drop: float, ranked: list[str],
               quantize: Callable[[list[str]], Path], top1: Callable[[Path], float],
               progress: Callable[[str], None]) -> Outcome:
    """Float-back the 1, 2, 4 ... most sensitive layers until the drop fits ``max_drop``; at least
    one layer stays int8 (an all-float model is no int8 artifact), else CheckNotMet."""
    best, steps, k, limit = first, [], 1, len(ranked) - 1
    while k <= limit:
        path = quantize(ranked[:k])
        acc = top1(path)
        now = Outcome(path, acc, drop_points(fp32_top1, acc), ranked[:k], steps)
        steps.append({"kept_float": k, "int8_top1": round(acc, 6), "drop_points": now.drop})
        progress(f"accuracy budget: {k} layer(s) back in float -> drop {now.drop:.2f} points "
                 f"(budget {max_drop:g})")
        if now.drop <= max_drop:
            return now
        if now.drop < best.drop:
            best = now
        k = limit if k < limit < 2 * k else 2 * k
    names = ", ".join(best.kept_float[:6]) + (" ..." if len(best.kept_float) > 6 else "")
    raise CheckNotMet(
        f"int8 cannot meet --max-drop {max_drop:g}: the best drop reached was {best.drop:.2f} top-1 "
        f"points with {len(best.kept_float)} of {len(ranked)} layers kept in float"
        + (f" ({names})" if names else ""))
