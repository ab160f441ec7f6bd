"""Accuracy on labelled images through any runtime: one artifact (``evaluate``) or several side
by side (``evaluate_many``), on an ImageNet-style folder or a PaddleClas list file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, ImageError, OptionError
from ..options import positive_int
from ..precision import judged
from ..predictor import Predictor, settings_for
from ..preprocess import (
    IMAGE_SUFFIXES,
    Skipped,
    check_policy,
    decode_image,
    no_usable_images,
    preprocess_array,
    skipped_records,
)
from ..resources import check_batch_memory

Pairs = list[tuple[Path, int]]  # (image, class id)
DATA_HINT = "an ImageNet-style folder or a PaddleClas list file"


@dataclass
class EvalResult:
    images: int
    top1: float
    top5: float
    runtime: str
    skipped: Skipped = field(default_factory=list)  # (image, reason) left out of the accuracy


@dataclass
class EvalRow:
    """One artifact's accuracy; ``delta_top1`` is in points against the first artifact."""

    artifact: str
    runtime: str
    artifact_precision: str  # what the model file stores
    compute_precision: str  # what the runtime computed in
    top1: float
    top5: float
    n: int  # images scored (skipped ones excluded)
    delta_top1: float = 0.0
    skipped: Skipped = field(default_factory=list)
    detail: str = ""  # e.g. "x86 twin of arm8": shown in the table, not in the JSON
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> str:
        return judged(self.artifact_precision, self.compute_precision)

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "runtime": self.runtime, "precision": self.precision,
                "artifact_precision": self.artifact_precision,
                "compute_precision": self.compute_precision, "top1": self.top1, "top5": self.top5,
                "n": self.n, "delta_top1": self.delta_top1,
                "skipped": skipped_records(self.skipped)}


def labelled_images(folder: str | Path, labels: list[str],
                    num_classes: int | None = None) -> Pairs:
    """(image, class id) pairs; a sub-folder is matched to a label by name, else by integer id."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"image folder not found: {root}")
    index = {label: i for i, label in enumerate(labels)}
    bound = len(labels) or num_classes
    pairs: Pairs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name in index:
            cid = index[sub.name]
        elif sub.name.isdigit() and (bound is None or int(sub.name) < bound):
            cid = int(sub.name)
        else:
            raise ImageError(f"{sub} matches no label of the model (labels.txt) nor a class id")
        # regular files only: a FIFO or a directory named like an image is never opened
        pairs += [(f, cid) for f in sorted(sub.iterdir())
                  if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not pairs:
        raise ImageError(f"{root} has no class sub-folders with images")
    return pairs


def labelled_list(list_file: str | Path, labels: list[str],
                  num_classes: int | None = None) -> Pairs:
    """A PaddleClas list file: ``path label`` per line, the path relative to the file's folder.

    Blank lines and ``#`` comment lines are skipped. An image listed but missing is not an error
    here: decoding reports it, so ``--bad-images`` decides (skip or stop)."""
    p = Path(list_file)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImageError(f"{p} is not a text list file ({DATA_HINT} expected)") from None
    except OSError as e:
        raise ImageError(f"cannot read list file {p}: {e.strerror}") from None
    bound = len(labels) or num_classes
    pairs: Pairs = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # the label is the last field, so a path may hold spaces
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ImageError(f"{p}:{lineno}: expected 'image_path class_id', got {line[:80]!r}")
        cid = int(parts[1])
        if bound is not None and cid >= bound:
            raise ImageError(f"{p}:{lineno}: class id {cid} is out of range: the model has "
                             f"{bound} classes")
        pairs.append((p.parent / parts[0], cid))
    if not pairs:
        raise ImageError(f"list file {p} lists no images")
    return pairs


def labelled_data(data: str | Path, labels: list[str], num_classes: int | None = None) -> Pairs:
    """(image, class id) pairs from a folder (sorted by class, then name) or a list file (its
    own order). ``num_classes`` bounds the class ids when there are no labels."""
    p = Path(data)
    if p.is_dir():
        return labelled_images(p, labels, num_classes)
    if p.is_file():
        return labelled_list(p, labels, num_classes)
    raise ImageError(f"labelled data not found: {p} ({DATA_HINT} expected)")


@dataclass
class _Tally:
    hits1: int = 0
    hits5: int = 0
    n: int = 0
    skipped: Skipped = field(default_factory=list)

    def add(self, out: np.ndarray, truth: np.ndarray) -> None:
        order = np.argsort(-out, axis=1, kind="stable")[:, :5]
        self.hits1 += int((order[:, 0] == truth).sum())
        self.hits5 += int((order == truth[:, None]).any(axis=1).sum())
        self.n += len(truth)


def _score(preds: Sequence[Predictor], pairs: Pairs, batch_size: int, on_bad_image: str,
           max_pixels: int | None, progress: Callable[[str], None]) -> list[_Tally]:
    """Each image is decoded once per batch, then preprocessed per distinct preprocessing (each
    artifact's own inference.yml) and run through every predictor."""
    tallies = [_Tally() for _ in preds]
    check_batch_memory(min(batch_size, len(pairs)), max(p.input_size for p in preds))
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        progress(f"evaluating {len(preds)} artifact{'s' if len(preds) > 1 else ''}: "
                 f"{start}/{len(pairs)} images")
        decoded: list[tuple[int, np.ndarray]] = []
        unreadable: list[tuple[int, str]] = []
        for i, (path, _) in enumerate(chunk):
            try:
                decoded.append((i, decode_image(path, max_pixels)))
            except ImageError as e:
                if on_bad_image == "stop":
                    raise
                unreadable.append((i, str(e)))
        cache: dict = {}  # PreprocessConfig (frozen) -> (batch, kept, bad)
        for pred, tally in zip(preds, tallies, strict=True):
            cfg = pred.info.preprocess
            if cfg not in cache:
                cache[cfg] = _preprocess(decoded, cfg, on_bad_image)
            batch, kept, bad = cache[cfg]
            # in image order, whether decoding or this artifact's preprocessing refused it
            tally.skipped += [(str(chunk[i][0]), why) for i, why in sorted(unreadable + bad)]
            if kept:
                tally.add(pred.predict_batch(batch), np.array([chunk[i][1] for i in kept]))
    return tallies


def _preprocess(decoded: list[tuple[int, np.ndarray]], cfg, on_bad_image: str,
                ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    rows: list[np.ndarray] = []
    kept: list[int] = []
    bad: list[tuple[int, str]] = []
    for i, img in decoded:
        try:
            rows.append(preprocess_array(img, cfg))
        except ImageError as e:  # e.g. smaller than the crop
            if on_bad_image == "stop":
                raise
            bad.append((i, str(e)))
            continue
        kept.append(i)
    return (np.stack(rows) if rows else np.empty((0, 3, cfg.crop_size, cfg.crop_size), np.float32),
            kept, bad)


def check_eval_options(batch_size: int, limit: int | None, on_bad_image: str) -> None:
    check_policy(on_bad_image)
    positive_int(batch_size, "--batch-size")
    if limit is not None:
        positive_int(limit, "--limit")


def evaluate(predictor: Predictor, folder: str | Path, batch_size: int = 32, *,
             on_bad_image: str = "skip", max_pixels: int | None = None) -> EvalResult:
    """Accuracy over the usable images; bad ones are skipped (listed) or, with "stop", raised."""
    check_eval_options(batch_size, None, on_bad_image)
    pairs = labelled_data(folder, predictor.info.labels, predictor.info.num_classes)
    t = _score([predictor], pairs, batch_size, on_bad_image, max_pixels, lambda _m: None)[0]
    if not t.n:
        raise no_usable_images(t.skipped)
    return EvalResult(t.n, t.hits1 / t.n, t.hits5 / t.n, predictor.runtime.name, t.skipped)


def same_labels(a: list[str], b: list[str], artifact: str | Path, reference: str | Path) -> None:
    """``artifact``'s labels ``b`` are the reference's ``a``, or one line saying where not."""
    if a == b:
        return
    if len(a) != len(b):
        why = f"{len(b)} labels vs {len(a)}"
    else:
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        why = f"class {i} is {b[i]!r} vs {a[i]!r}"
    raise ArtifactError(f"{artifact} has other labels than the first artifact {reference} ({why}); "
                        "accuracies are comparable only on the same labels")


def evaluate_many(artifacts: Sequence[str | Path], data: str | Path, *, runtime: str | None = None,
                  batch_size: int = 32, limit: int | None = None, model: str | None = None,
                  verify: bool = True, on_bad_image: str = "skip", max_pixels: int | None = None,
                  progress: Callable[[str], None] | None = None,
                  threads: int | None = None,
                  settings: dict[str, object] | None = None) -> list[EvalRow]:
    """Top-1 / top-5 of each artifact on the same labelled images (``labelled_data``; the first
    ``limit`` of them), with each artifact's top-1 delta to the first one (the reference).

    ``runtime`` applies to every artifact (default: each one's own). All artifacts must have the
    first one's labels. Every predictor stays loaded, so each image is decoded once."""
    say = progress or (lambda _m: None)
    check_eval_options(batch_size, limit, on_bad_image)
    if not artifacts:
        raise OptionError("name at least one artifact directory to evaluate")
    with contextlib.ExitStack() as stack:
        preds: list[Predictor] = []
        pairs: Pairs = []
        for k, artifact in enumerate(artifacts):
            say(f"loading {artifact} ({k + 1}/{len(artifacts)})")
            pred = stack.enter_context(Predictor(
                artifact, runtime=runtime, model=model, verify=verify, threads=threads,
                settings=settings_for(artifact, runtime, settings)))
            if preds:
                same_labels(preds[0].info.labels, pred.info.labels, artifact, artifacts[0])
            else:  # the data is checked before loading the other artifacts
                pairs = labelled_data(data, pred.info.labels, pred.info.num_classes)[:limit]
            preds.append(pred)
        tallies = _score(preds, pairs, batch_size, on_bad_image, max_pixels, say)
        rows: list[EvalRow] = []
        for artifact, pred, t in zip(artifacts, preds, tallies, strict=True):
            if not t.n:
                raise no_usable_images(t.skipped)
            rt = pred.runtime
            rows.append(EvalRow(str(artifact), rt.name, rt.artifact_precision,
                                rt.compute_precision, t.hits1 / t.n, t.hits5 / t.n, t.n,
                                skipped=t.skipped, detail=rt.detail, notes=list(rt.notes)))
    for row in rows[1:]:
        row.delta_top1 = (row.top1 - rows[0].top1) * 100
    return rows
