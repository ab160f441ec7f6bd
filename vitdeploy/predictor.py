"""The unified predictor: one artifact directory, any runtime, shared pre/post-processing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .artifact import ArtifactInfo, read_artifact_info, verify_artifact
from .errors import ArtifactError
from .preprocess import Skipped, check_policy, collect_images, no_usable_images, preprocess_usable
from .resources import check_batch_memory
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


class Predictions(list[Prediction]):
    """``predict_images``'s results: a plain list, plus ``skipped``: (image, reason) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: Skipped = []


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


def resolve_runtime(directory: Path, runtime: str | None) -> tuple[type[Runtime], Path]:
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


def settings_for(art: str | Path, runtime: str | None,
                  settings: dict[str, object] | None) -> dict[str, object] | None:
    """``settings`` for the runtimes that have those keys (the reference and other artifacts may
    run on other runtimes): a key no runtime here has is refused by that runtime's check."""
    if not settings:
        return None
    cls, _ = resolve_runtime(Path(art), runtime)
    mine = {k: v for k, v in settings.items() if k in cls.setting_choices}
    unknown = [k for k in settings if not any(k in c.setting_choices for c in RUNTIMES.values())]
    if unknown:
        cls.check_settings({unknown[0]: settings[unknown[0]]})  # one line naming the choices
    return mine or None


class Predictor:
    """``Predictor(dir)`` picks the runtime from the directory; ``runtime=`` names one."""

    def __init__(self, artifact_dir: str | Path, runtime: str | None = None,
                 threads: int | None = None, precision: str | None = None,
                 strict_precision: bool = True, model: str | None = None,
                 verify: bool = True, settings: dict[str, object] | None = None) -> None:
        """``settings`` overrides the runtime's measured session defaults (``Runtime.settings``);
        ``strict_precision=False`` applies ``precision`` only where the runtime offers it;
        ``model`` names the architecture of a bare PaddleClas export (no inference.yml);
        ``verify`` checks every file against the artifact's manifest before anything is loaded."""
        if verify:
            verify_artifact(artifact_dir)
        self.info: ArtifactInfo = read_artifact_info(artifact_dir, model=model)
        cls, path = resolve_runtime(self.info.directory, runtime)
        dropped = not strict_precision and precision is not None \
            and precision not in cls.precision_choices
        self.runtime: Runtime = cls(path, threads=threads, precision=None if dropped else precision,
                                    settings=settings)
        self.runtime.load()
        if dropped:  # said, never silent: the row's notes carry it
            self.runtime.notes.append(f"runtime {cls.name} offers no precision choice: "
                                      f"{precision} not applied, its model file ran as it is")

    @property
    def input_size(self) -> int:
        return self.info.preprocess.crop_size

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Raw model outputs for a preprocessed NCHW float32 batch."""
        return self.runtime.predict(batch)

    def predict_images(self, images: Iterable[str | Path], topk_k: int = 5,
                       batch_size: int = 8, *, on_bad_image: str = "skip",
                       max_pixels: int | None = None) -> Predictions:
        """Top-k per image. A bad image (unreadable, corrupt, too large: ImageError) is left out and
        listed in ``.skipped``, or raised with ``on_bad_image="stop"``; none usable raises."""
        check_policy(on_bad_image)
        paths = collect_images(images)
        check_batch_memory(min(batch_size, len(paths)), self.input_size)
        results = Predictions()
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            batch, kept, skipped = preprocess_usable(chunk, self.info.preprocess,
                                                     on_bad_image=on_bad_image, max_pixels=max_pixels)
            results.skipped += skipped
            if not kept:
                continue
            scores = self.scores(self.predict_batch(batch))
            for i, top in zip(kept, topk(scores, topk_k, self.info.labels), strict=False):
                results.append(Prediction(str(chunk[i]), top))
        if not results:
            raise no_usable_images(results.skipped)
        return results

    def scores(self, out: np.ndarray) -> np.ndarray:
        """Probabilities for the model's raw outputs, as ``predict_images`` ranks them (row by row:
        a row's scores do not depend on the rows batched with it)."""
        return out if self.info.softmax or self._outputs_probabilities(out) else softmax(out)

    def _outputs_probabilities(self, out: np.ndarray) -> bool:
        """A PaddleClas export bakes a softmax into the graph by default (Arch.infer_add_softmax)
        while its configs do not say so: for such a directory (no vitdeploy manifest), rows that
        are already probabilities are not put through softmax a second time."""
        if self.info.manifest:
            return False
        with np.errstate(invalid="ignore"):
            return bool(out.size and (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
