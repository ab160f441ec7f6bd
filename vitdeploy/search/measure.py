"""Accuracy and parity of one candidate, on the same images for all.

Invariant: every candidate sees the same preprocessed evaluation batch (the source's
inference.yml), and its Δ top-1 is against the Paddle fp32 baseline's top-1 on those images.
Parity is ``check.parity``'s own comparison (tolerance by judged precision, batch consistency)
on an evenly spread subset, against Paddle at batch 1. Nothing here is skipped for speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..check.evaluate import labelled_data
from ..check.parity import ParityRow, compare_artifact, run_batched
from ..errors import ImageError
from ..predictor import Predictor
from ..preprocess import no_usable_images, preprocess_usable, spread_evenly
from ..resources import batch_bytes, check_memory
from .candidates import Candidate

PARITY_IMAGES = 32  # evenly spread over the evaluation images (every class gets a say)


@dataclass
class EvalData:
    x: np.ndarray  # preprocessed through the source's inference.yml
    y: np.ndarray
    path: str
    skipped: list[tuple[str, str]]
    parity_idx: list[int]  # rows parity compares
    fingerprints: dict = field(default_factory=dict)  # calib, eval, source: what reuse keys hold

    @property
    def n(self) -> int:
        return len(self.y)


@dataclass
class Reference:
    """The baseline's outputs: logits on every image at the search's batch size, and Paddle at
    batch 1 on the parity subset (check.parity's reference)."""

    logits: np.ndarray
    parity_out: np.ndarray
    preprocess: object
    top1: float


@dataclass
class Measured:
    top1: float
    top5: float
    agreement: float  # top-1 agreement with the baseline, over every evaluation image
    parity: ParityRow
    artifact_precision: str
    compute_precision: str
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Measured:
        return cls(**{**d, "parity": ParityRow(**d["parity"])})


def check_eval(data: Path, src: Path | None, labels: Path | None) -> None:
    """The labelled images are listed (not read) before anything is written: a folder without
    class sub-folders, or a list file naming unknown classes, is refused in one line."""
    from ..artifact import read_artifact_info, read_labels

    if src is not None:
        info = read_artifact_info(src)
        labelled_data(data, info.labels, info.num_classes)
    else:
        labelled_data(data, read_labels(labels) if labels else [], None)


def load_eval(data: Path, src: Path, limit: int | None, say: Callable[[str], None]) -> EvalData:
    """Labelled images (a folder or a PaddleClas list file) through the source's preprocessing;
    held in memory (every candidate runs them), so their size is checked first."""
    from ..artifact import read_artifact_info

    info = read_artifact_info(src)
    pairs = labelled_data(data, info.labels, info.num_classes)
    if limit is not None and limit < len(pairs):
        pairs = [pairs[i] for i in spread_evenly(len(pairs), limit)]
    size = info.preprocess.crop_size
    check_memory(2 * batch_bytes(len(pairs), size),
                 f"the {len(pairs)} evaluation images at {size}x{size}, held for every candidate",
                 "pass --limit N to evaluate on an evenly spread subset")
    say(f"evaluation data: preprocessing {len(pairs)} images from {data}")
    x, kept, skipped = preprocess_usable([p for p, _ in pairs], info.preprocess)
    if not kept:
        raise no_usable_images(skipped)
    if len(kept) < 10:
        raise ImageError(f"{data} holds {len(kept)} usable labelled images; an accuracy budget "
                         "needs at least 10 (hundreds to resolve tenths of a point)")
    y = np.array([pairs[i][1] for i in kept], dtype=np.int64)
    return EvalData(x, y, str(data), skipped, spread_evenly(len(kept), PARITY_IMAGES))


def _top(out: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    order = np.argsort(-out, axis=1, kind="stable")[:, :5]
    return (float((order[:, 0] == y).mean()), float((order == y[:, None]).any(axis=1).mean()),
            order[:, 0])


def reference(c: Candidate, src: Path, data: EvalData, batch: int, threads: int | None,
              say: Callable[[str], None]) -> tuple[Reference, Measured]:
    """The baseline: its outputs (the reference every candidate is held to) and its own row."""
    with Predictor(src, runtime=c.runtime, threads=threads) as pred:
        say(f"{c.name}: accuracy on {data.n} images (the baseline)")
        logits = run_batched(pred.predict_batch, data.x, batch)
        parity_out = run_batched(pred.predict_batch, data.x[data.parity_idx], 1)
        ref = Reference(logits, parity_out, pred.info.preprocess, _top(logits, data.y)[0])
        return ref, _measured(c, pred, logits, data, ref, batch, say)


def measure(c: Candidate, artifact: Path, data: EvalData, ref: Reference, batch: int,
            threads: int | None, say: Callable[[str], None]) -> Measured:
    """``c``'s top-1/top-5 on every image at ``batch``, and its parity row."""
    with Predictor(artifact, runtime=c.runtime, precision=c.compute, threads=threads,
                   settings=dict(c.settings) or None) as pred:
        say(f"{c.name}: accuracy on {data.n} images")
        return _measured(c, pred, run_batched(pred.predict_batch, data.x, batch), data, ref,
                         batch, say)


def _measured(c: Candidate, pred: Predictor, out: np.ndarray, data: EvalData, ref: Reference,
              batch: int, say: Callable[[str], None]) -> Measured:
    top1, top5, first = _top(out, data.y)
    agreement = float((first == ref.logits.argmax(1)).mean())
    parity = compare_artifact(pred, c.name, data.x[data.parity_idx], ref.parity_out,
                              ref.preprocess, sorted({1, batch}), {}, say)
    rt = pred.runtime
    return Measured(top1, top5, agreement, parity, rt.artifact_precision, rt.compute_precision,
                    rt.detail, list(rt.notes))
