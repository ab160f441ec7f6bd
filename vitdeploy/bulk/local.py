"""Bulk prediction in this process: images streamed from ``sources``, decoded in a small thread
pool, one model, rows appended to a ``Sink``.

Invariant: at most ``2 x batch_size`` decoded images are held at once (the batch being run and
the one being decoded), whatever the number of images; every entry becomes exactly one row —
a prediction, or a failed row with the reason — unless ``resume`` found it already done.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..options import positive_int
from .sink import Row, Sink, check_output, partial_path, read_rows
from .sources import Entry, check_sources, iter_entries

Progress = Callable[[float, float, str], None]


@dataclass
class BulkResult:
    out: str
    format: str
    images: int  # rows in the output
    predicted: int  # rows this run computed
    failed: int  # rows this run recorded as failed
    resumed: int  # rows carried over from an earlier run
    seconds: float
    rate: float  # images per second this run
    runtime: str


def _stat(e: Entry) -> tuple[int, int]:
    try:
        st = os.stat(e.path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _prepare(e: Entry, pre, max_pixels: int | None) -> np.ndarray:
    from ..preprocess import preprocess_image

    return preprocess_image(e.path, pre, max_pixels)


def _chunks(it: Iterator[Entry], n: int) -> Iterator[list[Entry]]:
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def predict_to_file(artifact: str | Path, data: Sequence[str | Path], out: str | Path, *,
                    topk: int = 5, batch_size: int = 32, workers: int = 2,
                    runtime: str | None = None, precision: str | None = None,
                    threads: int | None = None, settings: dict | None = None,
                    logits: bool = False, resume: bool = False, force: bool = False,
                    max_pixels: int | None = None, verify: bool = True,
                    ray: str | None = None, actors: int = 1,
                    progress: Progress | None = None) -> BulkResult:
    """Predict every image of ``data`` into ``out`` (.parquet or .jsonl): in this process, or
    with ``ray`` ("auto": a local Ray; else a cluster address) on ``actors`` model actors."""
    from ..predictor import Predictor
    from ..predictor import topk as top_classes

    say = progress or (lambda _d, _t, _m: None)
    positive_int(batch_size, "--batch-size", 1, 4096)
    positive_int(workers, "--workers", 1, 256)
    positive_int(topk, "--topk", 1, 100_000)
    out = Path(out)
    check_sources(data)
    fmt = check_output(out, force, resume)
    done: set[tuple[str, int, int]] = set()
    carried: list[Path] = []
    if resume:
        for p in (out, partial_path(out)):
            if p.is_file():
                carried.append(p)
                done.update(r.key() for r in read_rows(p))
    total = sum(1 for _ in iter_entries(data))  # a walk, no image opened: for the ETA
    start = time.perf_counter()
    predicted = failed = 0
    with Predictor(artifact, runtime=runtime, precision=precision, threads=threads,
                   settings=settings, verify=verify) as pred, \
            ThreadPoolExecutor(workers) as pool, Sink(out, fmt, logits) as sink:
        for p in carried:  # rows of the earlier run first, each once
            seen: set[tuple[str, int, int]] = set()
            for r in read_rows(p):
                if r.key() not in seen:
                    seen.add(r.key())
                    sink.add(r)
        resumed = sink.count
        pre, labels = pred.info.preprocess, pred.info.labels
        if ray is not None:
            from . import ray_engine

            predicted, failed = ray_engine.run(
                artifact, data, sink, address=ray, actors=actors,
                threads=threads or 1, batch_size=batch_size, k=topk, logits=logits,
                runtime=runtime, precision=precision, settings=settings,
                max_pixels=max_pixels, pre=pre, done=done, say=say)
            chunks: Iterator[list[Entry]] = iter(())
        else:
            chunks = _chunks(iter_entries(data), batch_size)
        pending = None
        for chunk in chunks:
            stats = [_stat(e) for e in chunk]
            todo = [(e, s) for e, s in zip(chunk, stats, strict=True)
                    if (e.path, *s) not in done]
            futures = [(e, s, pool.submit(_prepare, e, pre, max_pixels)) for e, s in todo]
            if pending is not None:
                predicted, failed = _finish(pending, pred, sink, labels, topk, logits,
                                            top_classes, predicted, failed)
            pending = futures
            say(sink.count - resumed, max(total - resumed, 1),
                f"{sink.count} of {total} images")
        if pending is not None:
            predicted, failed = _finish(pending, pred, sink, labels, topk, logits, top_classes,
                                        predicted, failed)
        name = pred.runtime.name
    seconds = time.perf_counter() - start
    return BulkResult(str(out), fmt, sink.count, predicted, failed, resumed, seconds,
                      (predicted + failed) / seconds if seconds > 0 else 0.0, name)


def _finish(futures, pred, sink: Sink, labels, k: int, logits: bool, top_classes,
            predicted: int, failed: int) -> tuple[int, int]:
    """Collect one decoded chunk, run it as one batch, write its rows in input order."""
    arrays, kept = [], []
    rows: list[Row] = []
    for e, (size, mtime), fut in futures:
        try:
            arrays.append(fut.result())
            kept.append(len(rows))
            rows.append(Row(e.path, size, mtime, True, label=e.label))
        except ImageError as err:
            rows.append(Row(e.path, size, mtime, False, str(err), label=e.label))
            failed += 1
    if arrays:
        out = pred.predict_batch(np.stack(arrays))
        scores = pred.scores(out)
        for i, top, raw in zip(kept, top_classes(scores, k, labels), out, strict=True):
            r = rows[i]
            r.topk_ids = [t.class_id for t in top]
            r.topk_labels = [t.label for t in top]
            r.topk_scores = [float(t.score) for t in top]
            if logits:
                r.logits = [float(v) for v in raw]
        predicted += len(arrays)
    for r in rows:
        sink.add(r)
    return predicted, failed
