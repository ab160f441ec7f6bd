"""The unified predictor: one artifact directory, any runtime, shared pre/post-processing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .artifacts import ArtifactInfo, read_artifact_info
from .errors import ArtifactError
from .preprocess import collect_images, preprocess_batch
from .runtimes import RUNTIMES, Runtime, detect_runtime, get_runtime


@dataclass
class Top:
    class_id: int
    label: str
    score: float


@dataclass
class Prediction:
    image: str
    top: list[Top]

    def to_dict(self) -> dict:
        return asdict(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def topk(scores: np.ndarray, k: int, labels: Sequence[str]) -> list[list[Top]]:
    """Per row, the k best classes (ties broken by the lower class id)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [
        [Top(int(c), labels[c] if c < len(labels) else str(int(c)), float(row[c])) for c in idx]
        for row, idx in zip(scores, order, strict=False)
    ]


def _resolve(directory: Path, runtime: str | None) -> tuple[type[Runtime], Path]:
    """The runtime class and model file for a directory, or one line saying why there is none."""
    if runtime is None:
        found = detect_runtime(directory)
        if found is not None:
            return found
        reasons = [r for c in RUNTIMES.values() if (r := c.why_not(directory))]
        raise ArtifactError(reasons[0] if reasons
                            else f"{directory} holds no model file any runtime can load")
    cls = get_runtime(runtime)
    path = cls.find_model(directory)
    if path is None:
        raise ArtifactError(cls.why_not(directory) or
                            f"{directory} holds no model file runtime {runtime!r} can load "
                            f"(it reads {cls.formats})")
    return cls, path


class Predictor:
    """``Predictor(dir)`` picks the runtime from the directory; ``runtime=`` names one."""

    def __init__(self, artifact_dir: str | Path, runtime: str | None = None,
                 threads: int | None = None, precision: str | None = None,
                 strict_precision: bool = True) -> None:
        """``strict_precision=False`` applies ``precision`` only where the runtime offers it."""
        self.info: ArtifactInfo = read_artifact_info(artifact_dir)
        cls, path = _resolve(self.info.directory, runtime)
        if not strict_precision and precision not in cls.precision_choices:
            precision = None
        self.runtime: Runtime = cls(path, threads=threads, precision=precision)
        self.runtime.load()

    @property
    def input_size(self) -> int:
        return self.info.preprocess.crop_size

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Raw model outputs for a preprocessed NCHW float32 batch."""
        return self.runtime.predict(batch)

    def predict_images(self, images: Iterable[str | Path], topk_k: int = 5,
                       batch_size: int = 8) -> list[Prediction]:
        paths = collect_images(images)
        results: list[Prediction] = []
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            batch = preprocess_batch(chunk, self.info.preprocess)
            out = self.predict_batch(batch)
            scores = out if self.info.softmax else softmax(out)
            for p, top in zip(chunk, topk(scores, topk_k, self.info.labels), strict=False):
                results.append(Prediction(str(p), top))
        return results

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
