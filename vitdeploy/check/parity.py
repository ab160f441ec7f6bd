"""``vitdeploy parity``: every artifact and runtime against Paddle Inference fp32, measured.

The reference output of each input is Paddle Inference at batch 1. Each (artifact, runtime) runs
the same inputs at every requested batch size; the worst case over batch sizes is reported, and
outputs for the same input must agree across batch sizes (batch consistency). A reference file
from ``vitdeploy reference`` (reference.py) may stand in for the Paddle export: its inputs and
outputs, computed on another machine, are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, VitdeployError
from ..options import batch_sizes as check_batch_sizes
from ..options import positive_int
from ..precision import Tolerance, tolerance_for, validate_overrides
from ..predictor import Predictor, settings_for
from ..preprocess import check_policy, collect_images, no_usable_images, preprocess_usable, skipped_records
from ..resources import batch_bytes, check_memory, inference_bytes
from .reference import Reference, check_artifact, is_reference_file, load_reference


@dataclass
class ParityRow:
    artifact: str
    runtime: str
    precision: str  # the precision the tolerance was chosen for: the looser of the two below
    artifact_precision: str
    compute_precision: str
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
    notes: list[str] = field(default_factory=list)


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


# parity keeps its inputs (and every runtime's outputs) in memory to compare them row by row
MAX_INPUT_BYTES = 8 << 30


def _check_memory(count: int, size: int, batch_sizes: Sequence[int]) -> None:
    need = batch_bytes(count, size)
    if need > MAX_INPUT_BYTES:
        raise VitdeployError(f"parity holds its inputs in memory: {count} inputs of 3x{size}x{size} "
                             f"float32 need {need / 2**30:.1f} GiB (limit {MAX_INPUT_BYTES >> 30} "
                             "GiB); pass fewer images or a smaller --num-random")
    # the inputs, then one batch at a time on top of them (a batch size above count runs count)
    check_memory(need + inference_bytes(min(max(batch_sizes), count), size),
                 f"parity on {count} inputs of 3x{size}x{size} at batch size {max(batch_sizes)}",
                 "pass smaller --batch-sizes, fewer images or a smaller --num-random")


def make_inputs(ref: Predictor, images: Sequence[str | Path] | None, num_random: int,
                seed: int = 0, *, on_bad_image: str = "skip", max_pixels: int | None = None,
                batch_sizes: Sequence[int] = (1,)) -> tuple[np.ndarray, dict]:
    """The input batch and its description; bad images are skipped (listed) or raised."""
    pre = ref.info.preprocess
    paths = collect_images(images) if images else []
    _check_memory(len(paths) or num_random, pre.crop_size, batch_sizes)
    if images:
        x, kept, skipped = preprocess_usable(paths, pre, on_bad_image=on_bad_image,
                                             max_pixels=max_pixels)
        if not kept:
            raise no_usable_images(skipped)
        return x, {"kind": "images", "count": len(kept), "skipped": skipped_records(skipped)}
    size = pre.crop_size
    x = np.random.default_rng(seed).standard_normal((num_random, 3, size, size), dtype=np.float32)
    return x, {"kind": "random", "count": num_random, "seed": seed, "skipped": []}


def check(metrics: dict, batch_diff: float, tol: Tolerance) -> list[str]:
    fails = []  # written as "not (ok)" so a NaN metric fails rather than passes
    if not metrics["cosine_min"] >= tol.min_cosine:
        fails.append(f"cosine {metrics['cosine_min']:.6f} < {tol.min_cosine}")
    if not metrics["top1_agreement"] >= tol.min_top1_agreement:
        fails.append(f"top-1 agreement {metrics['top1_agreement']:.3f} < {tol.min_top1_agreement}")
    if tol.max_abs is not None and not metrics["max_abs"] <= tol.max_abs:
        fails.append(f"max abs {metrics['max_abs']:.3g} > {tol.max_abs}")
    if tol.max_batch_diff is not None and not batch_diff <= tol.max_batch_diff:
        fails.append(f"batch inconsistency {batch_diff:.3g} > {tol.max_batch_diff}")
    return fails


def run_parity(ref_dir: str | Path | Reference, artifacts: Sequence[str | Path], *,
               images: Sequence[str | Path] | None = None, batch_sizes: Sequence[int] = (1, 4, 8),
               runtimes: Sequence[str] | None = None, precision: str | None = None,
               num_random: int = 8, overrides: dict | None = None, model: str | None = None,
               verify: bool = True, progress: Callable[[str], None] | None = None,
               on_bad_image: str = "skip", max_pixels: int | None = None,
               threads: int | None = None,
               settings: dict[str, object] | None = None) -> ParityReport:
    """``ref_dir`` is the Paddle export run here at batch 1, or a reference (a .npz path or a
    Reference), which brings its own inputs: then ``images`` must be None and ``num_random`` is
    unused. ``model`` names the architecture of bare PaddleClas directories (no inference.yml).
    Bad ``images`` are skipped and listed in ``inputs["skipped"]``, or raised with "stop"."""
    say = progress or (lambda _msg: None)
    check_policy(on_bad_image)
    if not artifacts:
        raise VitdeployError("no artifact to compare; pass one or more artifact directories")
    batch_sizes = check_batch_sizes(batch_sizes)
    positive_int(num_random, "--num-random")
    overrides = validate_overrides(overrides)
    src = load_reference(ref_dir) if is_reference_file(ref_dir) else ref_dir
    if isinstance(src, Reference):
        if images:
            raise VitdeployError(f"a reference brings its own inputs: drop --images, or pass the "
                                 f"Paddle export instead of {src.path or 'the reference'}")
        x, expected, ref_pre = src.inputs, src.outputs, src.preprocess
        inputs = {"kind": "reference", "count": len(x), "skipped": []}
        reference = src.describe()
    else:
        with Predictor(src, runtime="paddle", model=model, verify=verify, threads=threads) as ref:
            x, inputs = make_inputs(ref, images, num_random, on_bad_image=on_bad_image,
                                    max_pixels=max_pixels, batch_sizes=batch_sizes)
            say(f"reference: Paddle Inference on {len(x)} inputs")
            expected = run_batched(ref.predict_batch, x, 1)
            ref_pre = ref.info.preprocess
            reference = {"dir": str(src), "runtime": "paddle",
                         "precision": ref.runtime.compute_precision,
                         "artifact_precision": ref.runtime.artifact_precision}
    rows = []
    for art in artifacts:
        for name in list(runtimes) if runtimes else [None]:
            with Predictor(art, runtime=name, precision=precision, strict_precision=False,
                           model=model, verify=verify, threads=threads,
                           settings=settings_for(art, name, settings)) as pred:
                if isinstance(src, Reference):
                    check_artifact(src, pred.info, art, model)
                rows.append(compare_artifact(pred, str(art), x, expected, ref_pre, batch_sizes,
                                              overrides, say, inputs["kind"] == "random"))
    return ParityReport(all(r.passed for r in rows), reference, inputs, list(batch_sizes), rows)


def compare_artifact(pred: Predictor, art: str, x: np.ndarray, expected: np.ndarray, ref_pre,
                      batch_sizes: Sequence[int], overrides: dict, say: Callable[[str], None],
                      random_inputs: bool = False) -> ParityRow:
    rt = pred.runtime
    stored, computed = rt.artifact_precision, rt.compute_precision
    judged, tol = tolerance_for(stored, computed, overrides)
    notes = list(rt.notes)
    if rt.batch_dependent(rt.model_path) and "max_batch_diff" not in overrides:
        tol = replace(tol, max_batch_diff=None)
        notes.append("dynamic int8: activation scales follow each batch, so outputs vary with "
                     "batch size; batch consistency not judged")
    elif random_inputs and judged == "int8":
        notes.append("static int8 was calibrated on images: random inputs fall outside its "
                     "activation ranges, so pass --images for a meaningful comparison")
    outs = []
    for b in batch_sizes:
        say(f"{Path(art).name}: {rt.name} ({computed}) at batch {b}")
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
        batch_diff = max(float(np.nan_to_num(np.abs(o - outs[0]), nan=np.inf).max()) for o in outs)
    fails = check(metrics, batch_diff, tol)
    if any(m.get("non_finite") for m in worst):
        fails.insert(0, "non-finite outputs (NaN/inf)")
    if pred.info.preprocess != ref_pre:
        fails.append("preprocessing (inference.yml) differs from the reference")
    return ParityRow(art, rt.name, judged, stored, computed, **metrics, batch_max_diff=batch_diff,
                     passed=not fails, failures=fails, tolerance=asdict(tol), detail=rt.detail,
                     notes=notes)
