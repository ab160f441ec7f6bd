"""``vitdeploy parity``: every artifact and runtime against Paddle Inference fp32, measured.

The reference output of each input is Paddle Inference at batch 1. Each (artifact, runtime) runs
the same inputs at every requested batch size; the worst case over batch sizes is reported, and
outputs for the same input must agree across batch sizes (batch consistency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ArtifactError, VitdeployError
from .predictor import Predictor
from .preprocess import collect_images, preprocess_batch


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    min_top1_agreement: float
    max_abs: float | None = None  # optional absolute bound on any logit
    max_batch_diff: float = 1e-4  # same input, different batch size


# Presets by the precision a runtime really computed in (overridable from the CLI).
PRESETS = {
    "fp32": Tolerance(0.99999, 1.0, None, 1e-4),
    "fp16": Tolerance(0.999, 0.98, None, 1e-2),
    "bf16": Tolerance(0.995, 0.95, None, 5e-2),
    "int8": Tolerance(0.98, 0.90, None, 5e-2),
    "int16": Tolerance(0.9999, 0.99, None, 1e-3),
}


@dataclass
class ParityRow:
    artifact: str
    runtime: str
    precision: str
    max_abs: float
    mean_abs: float
    cosine_min: float
    top1_agreement: float
    top5_overlap: float
    batch_max_diff: float
    passed: bool
    failures: list[str] = field(default_factory=list)
    tolerance: dict = field(default_factory=dict)
    detail: str = ""


@dataclass
class ParityReport:
    passed: bool
    reference: dict
    inputs: dict
    batch_sizes: list[int]
    results: list[ParityRow]

    def to_dict(self) -> dict:
        return asdict(self)


def compare(ref: np.ndarray, out: np.ndarray) -> dict:
    """Row-wise agreement of two [N, classes] output matrices."""
    if ref.shape != out.shape:
        raise ArtifactError(f"output shape {list(out.shape)} differs from the reference {list(ref.shape)}")
    if not np.isfinite(out).all():
        return {"max_abs": float("inf"), "mean_abs": float("inf"), "cosine_min": -1.0,
                "top1_agreement": 0.0, "top5_overlap": 0.0, "non_finite": True}
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    num = (out * ref).sum(1, dtype=np.float64)
    den = np.linalg.norm(out.astype(np.float64), axis=1) * np.linalg.norm(ref.astype(np.float64), axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), 1.0)
    k = min(5, ref.shape[1])
    ref_top = np.argsort(-ref, axis=1, kind="stable")[:, :k]
    out_top = np.argsort(-out, axis=1, kind="stable")[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref_top, out_top)]
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "cosine_min": float(cos.min()),
            "top1_agreement": float((ref_top[:, 0] == out_top[:, 0]).mean()),
            "top5_overlap": float(np.mean(overlap))}


def run_batched(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def make_inputs(ref: Predictor, images: Sequence[str | Path] | None, num_random: int,
                seed: int = 0) -> tuple[np.ndarray, dict]:
    pre = ref.info.preprocess
    if images:
        paths = collect_images(images)
        x = preprocess_batch(paths, pre)
        return x, {"kind": "images", "count": len(paths)}
    size = pre.crop_size
    x = np.random.default_rng(seed).standard_normal((num_random, 3, size, size)).astype(np.float32)
    return x, {"kind": "random", "count": num_random, "seed": seed}


def check(metrics: dict, batch_diff: float, tol: Tolerance) -> list[str]:
    fails = []
    if metrics["cosine_min"] < tol.min_cosine:
        fails.append(f"cosine {metrics['cosine_min']:.6f} < {tol.min_cosine}")
    if metrics["top1_agreement"] < tol.min_top1_agreement:
        fails.append(f"top-1 agreement {metrics['top1_agreement']:.3f} < {tol.min_top1_agreement}")
    if tol.max_abs is not None and metrics["max_abs"] > tol.max_abs:
        fails.append(f"max abs {metrics['max_abs']:.3g} > {tol.max_abs}")
    if batch_diff > tol.max_batch_diff:
        fails.append(f"batch inconsistency {batch_diff:.3g} > {tol.max_batch_diff}")
    return fails


def run_parity(ref_dir: str | Path, artifacts: Sequence[str | Path], *,
               images: Sequence[str | Path] | None = None, batch_sizes: Sequence[int] = (1, 4, 8),
               runtimes: Sequence[str] | None = None, precision: str | None = None,
               num_random: int = 8, overrides: dict | None = None,
               progress: Callable[[str], None] | None = None) -> ParityReport:
    say = progress or (lambda _msg: None)
    if not artifacts:
        raise VitdeployError("no artifact to compare; pass one or more artifact directories")
    if any(b < 1 for b in batch_sizes) or not batch_sizes:
        raise VitdeployError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    with Predictor(ref_dir, runtime="paddle") as ref:
        x, inputs = make_inputs(ref, images, num_random)
        say(f"reference: Paddle Inference on {len(x)} inputs")
        expected = run_batched(ref.predict_batch, x, 1)
        ref_pre = ref.info.preprocess
        reference = {"dir": str(ref_dir), "runtime": "paddle", "precision": ref.runtime.precision}
    rows = []
    for art in artifacts:
        names = list(runtimes) if runtimes else [None]
        for name in names:
            with Predictor(art, runtime=name, precision=precision, strict_precision=False) as pred:
                rt = pred.runtime
                tol = replace(PRESETS.get(rt.precision, PRESETS["fp32"]), **(overrides or {}))
                outs = []
                for b in batch_sizes:
                    say(f"{Path(art).name}: {rt.name} ({rt.precision}) at batch {b}")
                    outs.append(run_batched(pred.predict_batch, x, b))
                worst = [compare(expected, o) for o in outs]
                metrics = {
                    "max_abs": max(m["max_abs"] for m in worst),
                    "mean_abs": max(m["mean_abs"] for m in worst),
                    "cosine_min": min(m["cosine_min"] for m in worst),
                    "top1_agreement": min(m["top1_agreement"] for m in worst),
                    "top5_overlap": min(m["top5_overlap"] for m in worst),
                }
                with np.errstate(invalid="ignore"):
                    batch_diff = max(float(np.nan_to_num(np.abs(o - outs[0]), nan=np.inf).max())
                                     for o in outs)
                fails = check(metrics, batch_diff, tol)
                if any(m.get("non_finite") for m in worst):
                    fails.insert(0, "non-finite outputs (NaN/inf)")
                if pred.info.preprocess != ref_pre:
                    fails.append("preprocessing (inference.yml) differs from the reference")
                rows.append(ParityRow(str(art), rt.name, rt.precision, **metrics,
                                      batch_max_diff=batch_diff, passed=not fails, failures=fails,
                                      tolerance=asdict(tol), detail=rt.detail))
    return ParityReport(all(r.passed for r in rows), reference, inputs, list(batch_sizes), rows)
