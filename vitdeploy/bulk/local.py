"""Bulk prediction to a file: images streamed from ``sources``, rows appended to a ``Sink``; in
this process (decode in a small thread pool, one model) or on Ray (``ray_engine``).

Invariants:
- in-process, at most ``2 x batch_size`` decoded images are held at once (the batch being run
  and the one being decoded), whatever the number of images;
- every entry becomes exactly one row (a prediction, or a failed row with the reason) unless
  ``resume`` found it already done; the rows are the same, in the same order, on Ray.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..options import positive_int
from ..resources import check_threads
from .sink import Row, Sink, check_output, partial_path, read_rows
from .sources import Entry, check_not_an_input, check_sources, iter_entries, stat_key

Progress = Callable[[float, float, str], None]
Key = tuple[str, int, int]


@dataclass
class BulkResult:
    out: str
    format: str
    images: int  # rows in the output
    predicted: int  # rows this run computed
    failed: int  # rows this run recorded as failed
    resumed: int  # rows carried over from an earlier run
    seconds: float
    rate: float  # images per second this run, start-up included
    startup_s: float  # the model loaded in-process; Ray started and joined (actors load later)
    steady_rate: float  # images per second after start-up
    runtime: str
    engine: str  # "in-process" or "ray: N actors x T threads at ADDRESS"


def _pending(entries: Iterable[Entry], done: set[Key]) -> Iterator[Entry]:
    """Entries no earlier run finished (an image is its path, size and mtime)."""
    for e in entries:
        if not done or (e.path, *stat_key(e.path)) not in done:
            yield e


def _carry(sources: list[Path], sink: Sink) -> set[Key]:
    """Rows of the earlier output and partial file into ``sink``, each image once; their keys."""
    done: set[Key] = set()
    for p in sources:
        for r in read_rows(p):
            if r.key() not in done:
                done.add(r.key())
                sink.add(r)
    return done


def predict_to_file(artifact: str | Path, data: Sequence[str | Path], out: str | Path, *,
                    topk: int = 5, batch_size: int = 32, workers: int = 2,
                    runtime: str | None = None, precision: str | None = None,
                    threads: int | None = None, settings: dict | None = None,
                    logits: bool = False, resume: bool = False, force: bool = False,
                    max_pixels: int | None = None, verify: bool = True,
                    ray: str | None = None, progress: Progress | None = None) -> BulkResult:
    """Predict every image of ``data`` into ``out`` (.parquet or .jsonl). In this process with
    ``workers`` decoding threads; with ``ray`` ("auto": a local Ray, else a cluster's address)
    on ``workers`` model actors of ``threads`` threads each."""
    say = progress or (lambda _d, _t, _m: None)
    positive_int(batch_size, "--batch-size", 1, 4096)
    positive_int(workers, "--workers", 1, 256)
    positive_int(topk, "--topk", 1, 100_000)
    check_threads(threads)
    out = Path(out)
    check_sources(data)
    check_not_an_input(out, data)
    fmt = check_output(out, force, resume)
    carried = [p for p in (out, partial_path(out)) if resume and p.is_file()]
    start = time.perf_counter()
    with Sink(out, fmt, logits) as sink:
        done = _carry(carried, sink)
        sink.mark()  # an error before any new row leaves the earlier files as they were
        todo = _pending(iter_entries(data), done)
        run = _on_ray if ray is not None else _in_process
        predicted, failed, name, engine, began = run(
            artifact, todo, sink, ray=ray, workers=workers, threads=threads,
            batch_size=batch_size, topk=topk, logits=logits, runtime=runtime,
            precision=precision, settings=settings, max_pixels=max_pixels, verify=verify,
            total=None if ray is not None else sum(1 for _ in _pending(iter_entries(data), done)),
            say=say)
    end = time.perf_counter()
    seconds, new, startup = end - start, predicted + failed, began - start
    return BulkResult(str(out), fmt, sink.count, predicted, failed, len(done), seconds,
                      new / seconds if seconds > 0 else 0.0, startup,
                      new / (end - start - startup) if end - start > startup else 0.0,
                      name, engine)


def _in_process(artifact, todo: Iterator[Entry], sink: Sink, *, workers: int, threads, batch_size,
                topk, logits, runtime, precision, settings, max_pixels, verify, total: int, say,
                **_ray) -> tuple[int, int, str, str, float]:
    from ..predictor import Predictor

    predicted = failed = seen = 0
    with Predictor(artifact, runtime=runtime, precision=precision, threads=threads,
                   settings=settings, verify=verify) as pred, ThreadPoolExecutor(workers) as pool:
        began = time.perf_counter()
        pre = pred.info.preprocess
        pending = None
        for chunk in _chunks(todo, batch_size):
            futures = [(e, stat_key(e.path), pool.submit(_prepare, e, pre, max_pixels))
                       for e in chunk]
            if pending is not None:  # run the previous batch while this one decodes
                p, f = _finish(pending, pred, sink, topk, logits)
                predicted, failed = predicted + p, failed + f
            pending = futures
            seen += len(chunk)
            say(seen, max(total, 1), _progress(seen, total, began))
        if pending is not None:
            p, f = _finish(pending, pred, sink, topk, logits)
            predicted, failed = predicted + p, failed + f
        return predicted, failed, pred.runtime.name, "in-process", began


def _on_ray(artifact, todo: Iterator[Entry], sink: Sink, *, ray: str, workers: int, threads,
            batch_size, topk, logits, runtime, precision, settings, max_pixels, verify, say,
            **_local) -> tuple[int, int, str, str, float]:
    """The driver checks the artifact (manifest, preprocessing) but loads no model: actors do."""
    import json

    from ..artifact import read_artifact_info, verify_artifact
    from .ray_engine import Job, actor_settings, cluster, stream

    if verify:
        verify_artifact(artifact)
    info = read_artifact_info(artifact)
    job = Job(str(Path(artifact).absolute()), runtime, precision,
              actor_settings(artifact, runtime, settings), topk, logits, batch_size)
    predicted = failed = 0
    name: str | None = None  # the actors' runtime, from the first batch
    with cluster(ray, workers, threads) as plan:
        began = time.perf_counter()
        total, batches = stream(todo, job, plan, max_pixels=max_pixels,
                                pre=info.preprocess)
        for b in batches:
            cols = _columns(b, info.labels, logits)
            sink.add_columns(cols)
            ok = sum(cols["ok"])
            predicted, failed = predicted + ok, failed + len(cols["ok"]) - ok
            if name is None:
                name = json.loads(str(b["runtime"][0]))["name"]
            say(predicted + failed, max(total, 1), _progress(predicted + failed, total, began))
    engine = f"ray: {plan.actors} actor(s) x {plan.threads} thread(s) at {plan.address}"
    return predicted, failed, name or runtime or "?", engine, began


def _progress(done: int, total: int, began: float) -> str:
    """The bar's text: counts and the rate so far (the bar adds elapsed time and ETA)."""
    seconds = time.perf_counter() - began
    rate = f", {done / seconds:,.0f} images/s" if seconds > 0 else ""
    return f"{done:,} of {total:,} images{rate}"


def _columns(b: dict, labels: list[str], logits: bool) -> dict[str, list]:
    """A result batch as the sink's columns ("" and -1 stand for none: numpy has no null); ids
    named as ``predictor.topk`` names them; a failed row has empty lists."""
    ok = [bool(v) for v in b["ok"]]
    ids = [i if good else [] for i, good in zip(b["topk_ids"].tolist(), ok, strict=True)]
    cols = {
        "image": [str(v) for v in b["image"]], "size": b["size"].tolist(),
        "mtime_ns": b["mtime_ns"].tolist(), "ok": ok,
        "error": [str(v) or None for v in b["error"]],
        "label": [v if v >= 0 else None for v in b["label"].tolist()],
        "topk_ids": ids,
        "topk_labels": [[labels[c] if c < len(labels) else str(c) for c in i] for i in ids],
        "topk_scores": [s if good else [] for s, good in
                        zip(b["topk_scores"].tolist(), ok, strict=True)]}
    if logits:
        cols["logits"] = [v if good else None for v, good in
                          zip(b["logits"].tolist(), ok, strict=True)]
    return cols


def _prepare(e: Entry, pre, max_pixels: int | None) -> np.ndarray:
    from ..preprocess import preprocess_image

    return preprocess_image(e.path, pre, max_pixels)


def _chunks(it: Iterator[Entry], n: int) -> Iterator[list[Entry]]:
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def _finish(futures, pred, sink: Sink, k: int, logits: bool) -> tuple[int, int]:
    """Collect one decoded chunk, run it as one batch, write its rows in input order;
    (predicted, failed)."""
    from ..predictor import topk as top_classes

    arrays, kept = [], []
    rows: list[Row] = []
    for e, (size, mtime), fut in futures:
        try:
            arrays.append(fut.result())
            kept.append(len(rows))
            rows.append(Row(e.path, size, mtime, True, label=e.label))
        except ImageError as err:
            rows.append(Row(e.path, size, mtime, False, str(err), label=e.label))
    if arrays:
        out = pred.predict_batch(np.stack(arrays))
        ranked = top_classes(pred.scores(out), k, pred.info.labels)
        for i, top, raw in zip(kept, ranked, out, strict=True):
            r = rows[i]
            r.topk_ids = [t.class_id for t in top]
            r.topk_labels = [t.label for t in top]
            r.topk_scores = [float(t.score) for t in top]
            if logits:
                r.logits = [float(v) for v in raw]
    for r in rows:
        sink.add(r)
    return len(arrays), len(rows) - len(arrays)
