"""Accuracy on an ImageNet-style folder (one sub-folder per class) through any runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImageError
from .predictor import Predictor
from .preprocess import IMAGE_SUFFIXES, Skipped, check_policy, no_usable_images, preprocess_usable


@dataclass
class EvalResult:
    images: int
    top1: float
    top5: float
    runtime: str
    skipped: Skipped = field(default_factory=list)  # (image, reason) left out of the accuracy


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
        # regular files only: a FIFO or a directory named like an image is never opened
        pairs += [(f, cid) for f in sorted(sub.iterdir())
                  if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not pairs:
        raise ImageError(f"{root} has no class sub-folders with images")
    return pairs


def evaluate(predictor: Predictor, folder: str | Path, batch_size: int = 32, *,
             on_bad_image: str = "skip", max_pixels: int | None = None) -> EvalResult:
    """Accuracy over the usable images; bad ones are skipped (listed) or, with "stop", raised."""
    check_policy(on_bad_image)
    pairs = labelled_images(folder, predictor.info.labels)
    hits1 = hits5 = n = 0
    skipped: Skipped = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        batch, kept, bad = preprocess_usable([p for p, _ in chunk], predictor.info.preprocess,
                                             on_bad_image=on_bad_image, max_pixels=max_pixels)
        skipped += bad
        if not kept:
            continue
        out = predictor.predict_batch(batch)
        order = np.argsort(-out, axis=1, kind="stable")[:, :5]
        truth = np.array([chunk[i][1] for i in kept])
        hits1 += int((order[:, 0] == truth).sum())
        hits5 += int((order == truth[:, None]).any(axis=1).sum())
        n += len(kept)
    if not n:
        raise no_usable_images(skipped)
    return EvalResult(n, hits1 / n, hits5 / n, predictor.runtime.name, skipped)
