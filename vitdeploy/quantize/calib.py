"""Calibration images: a folder, preprocessed exactly as the artifact records (inference.yml),
chosen deterministically, never the evaluation data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifact import sha256
from ..errors import ImageError, OptionError
from ..models.config import PreprocessConfig
from ..options import positive_int
from ..preprocess import collect_images, no_usable_images, preprocess_usable, spread_evenly

DEFAULT_CALIB_SIZE = 300
MAX_CALIB_SIZE = 100_000


@dataclass
class Calibration:
    batch: np.ndarray  # [N, 3, H, W] float32, preprocessed like the model's inputs
    images: list[str]
    digest: str  # sha256 over the chosen images' names and bytes: the manifest's record
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_record(self) -> dict:
        return {"count": len(self.images), "sha256": self.digest, "skipped": len(self.skipped)}


def _overlaps(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def pick(paths: list[Path], size: int) -> list[Path]:
    """``size`` images spread evenly over the sorted list (folders are sorted by class, so every
    class is represented), deterministically."""
    return [paths[i] for i in spread_evenly(len(paths), size)]


def load_calibration(folder: str | Path, preprocess: PreprocessConfig,
                     size: int = DEFAULT_CALIB_SIZE, *, eval_data: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> Calibration:
    say = progress or (lambda _m: None)
    root = Path(folder)
    positive_int(size, "--calib-size", 1, MAX_CALIB_SIZE, f" (default {DEFAULT_CALIB_SIZE})")
    if not root.is_dir():
        raise ImageError(f"calibration folder not found: {root} (pass --calib DIR: a folder of "
                         "training-style images)")
    if eval_data is not None and Path(eval_data).exists() and _overlaps(root, Path(eval_data)):
        raise OptionError(f"--calib {root} overlaps the evaluation data {eval_data}: calibrating "
                          "on the images you measure on hides the accuracy loss; use training "
                          "images for --calib")
    try:
        paths = collect_images([root])
    except ImageError:
        raise ImageError(f"calibration folder {root} holds no images (JPEG, PNG, BMP, WebP, TIFF "
                         "or GIF)") from None
    chosen = pick(paths, size)
    say(f"calibration: preprocessing {len(chosen)} of {len(paths)} images from {root}")
    batch, kept, skipped = preprocess_usable(chosen, preprocess, on_bad_image="skip")
    if not kept:
        raise no_usable_images(skipped)
    images = [chosen[i] for i in kept]
    h = hashlib.sha256()
    for p in images:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + sha256(p).encode())
    return Calibration(batch, [str(p) for p in images], h.hexdigest(), skipped)


@dataclass
class EvalSet:
    """Labelled evaluation images, preprocessed like the model's inputs: the accuracy budget's
    yardstick (never the calibration images)."""

    x: np.ndarray  # [N, 3, H, W] float32
    y: np.ndarray  # [N] int64 class ids
    source: str = ""

    def top1(self, predict: Callable[[np.ndarray], np.ndarray], batch: int = 32) -> float:
        hits = 0
        for i in range(0, len(self.x), batch):
            hits += int((predict(self.x[i:i + batch]).argmax(axis=1) == self.y[i:i + batch]).sum())
        return hits / max(len(self.x), 1)
