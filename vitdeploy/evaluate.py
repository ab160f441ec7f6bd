"""Accuracy on an ImageNet-style folder (one sub-folder per class) through any runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError
from .predictor import Predictor
from .preprocess import IMAGE_SUFFIXES, preprocess_batch


@dataclass
class EvalResult:
    images: int
    top1: float
    top5: float
    runtime: str


def labelled_images(folder: str | Path, labels: list[str]) -> list[tuple[Path, int]]:
    """(image, class id) pairs; a sub-folder is matched to a label by name, else by integer id."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"image folder not found: {root}")
    index = {label: i for i, label in enumerate(labels)}
    pairs: list[tuple[Path, int]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name in index:
            cid = index[sub.name]
        elif sub.name.isdigit() and int(sub.name) < max(len(labels), 1):
            cid = int(sub.name)
        else:
            raise ImageError(f"{sub} matches no label of the model (labels.txt) nor a class id")
        pairs += [(f, cid) for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not pairs:
        raise ImageError(f"{root} has no class sub-folders with images")
    return pairs


def evaluate(predictor: Predictor, folder: str | Path, batch_size: int = 32) -> EvalResult:
    pairs = labelled_images(folder, predictor.info.labels)
    hits1 = hits5 = 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch = preprocess_batch([p for p, _ in chunk], predictor.info.preprocess)
        out = predictor.predict_batch(batch)
        order = np.argsort(-out, axis=1, kind="stable")[:, :5]
        truth = np.array([c for _, c in chunk])
        hits1 += int((order[:, 0] == truth).sum())
        hits5 += int((order == truth[:, None]).any(axis=1).sum())
    n = len(pairs)
    return EvalResult(n, hits1 / n, hits5 / n, predictor.runtime.name)
