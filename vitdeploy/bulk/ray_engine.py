"""Bulk prediction on Ray Data: entries read in tasks, images decoded in tasks, the model run in
an actor pool (one ``Predictor`` per actor), rows streamed back to the driver and written by the
same ``Sink`` as in-process (so the file, its schema, resume and atomicity are the same).

Invariants:
- the entry list goes to Ray as a temp text file (written while streaming the sources), never as
  one in-memory list;
- order is preserved (``preserve_order``): the output is row for row the in-process one;
- a killed actor is restarted and its batch retried (``max_restarts`` / ``max_task_retries``):
  every entry ends as exactly one row;
- threads per actor x actors never exceed the CPUs Ray was given: actors do not fight over cores.

Work in progress (issue 19): ``address="auto"`` starts Ray inside this process with
``ray.init``; serve's ``LocalRay`` (a helper in its own session, so a terminal's Ctrl-C does not
reach Ray) should move below the workflows floor and be used here too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .sink import Row, Sink
from .sources import iter_entries

Progress = Callable[[float, float, str], None]


def _entries_file(data: Sequence[str | Path], folder: Path, done: set) -> tuple[Path, int]:
    """``path<TAB>label`` per line (label empty when none), streamed from the sources; entries
    an earlier run finished (``done``: path, size, mtime) are left out."""
    path, n = folder / "entries.txt", 0
    with open(path, "w", encoding="utf-8") as f:
        for e in iter_entries(data):
            if done:
                try:
                    st = os.stat(e.path)
                    if (e.path, st.st_size, st.st_mtime_ns) in done:
                        continue
                except OSError:
                    pass
            f.write(f"{e.path}\t{'' if e.label is None else e.label}\n")
            n += 1
    return path, n


def _decode(batch: dict, pre, max_pixels: int | None) -> dict:
    """A Ray task: stat and preprocess each entry; a bad image becomes a failed row."""
    from ..errors import ImageError
    from ..preprocess import preprocess_image

    out: dict[str, list] = {k: [] for k in ("image", "size", "mtime_ns", "ok", "error", "label",
                                            "pixels")}
    blank = np.zeros((3, pre.crop_size, pre.crop_size), np.float32)
    for line in batch["text"]:
        path, _, label = str(line).partition("\t")
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size = mtime = -1
        try:
            pixels, ok, err = preprocess_image(path, pre, max_pixels), True, None
        except ImageError as e:
            pixels, ok, err = blank, False, str(e)
        for k, v in (("image", path), ("size", size), ("mtime_ns", mtime), ("ok", ok),
                     ("error", err or ""), ("label", int(label) if label else -1),
                     ("pixels", pixels)):
            out[k].append(v)
    return {k: (np.stack(v) if k == "pixels" else v) for k, v in out.items()}


class _Model:
    """A Ray actor of the pool: one Predictor, loaded once."""

    def __init__(self, artifact: str, runtime: str | None, precision: str | None,
                 threads: int, settings: dict | None, k: int, logits: bool) -> None:
        from ..predictor import Predictor

        self.pred = Predictor(artifact, runtime=runtime, precision=precision, threads=threads,
                              settings=settings, verify=False)
        self.k, self.logits = k, logits

    def __call__(self, batch: dict) -> dict:
        from ..predictor import topk

        ok = np.asarray(batch["ok"], bool)
        n = len(ok)
        ids: list[list[int]] = [[] for _ in range(n)]
        labels: list[list[str]] = [[] for _ in range(n)]
        scores: list[list[float]] = [[] for _ in range(n)]
        raw: list[list[float]] = [[] for _ in range(n)]
        if ok.any():
            out = self.pred.predict_batch(np.ascontiguousarray(batch["pixels"][ok], np.float32))
            rows = np.flatnonzero(ok)
            for i, top, logit in zip(rows, topk(self.pred.scores(out), self.k,
                                                self.pred.info.labels), out, strict=True):
                ids[i] = [t.class_id for t in top]
                labels[i] = [t.label for t in top]
                scores[i] = [float(t.score) for t in top]
                raw[i] = [float(v) for v in logit] if self.logits else []
        result = {k: list(batch[k]) for k in ("image", "size", "mtime_ns", "ok", "error", "label")}
        result.update(topk_ids=ids, topk_labels=labels, topk_scores=scores, logits=raw)
        return result


def run(artifact: str | Path, data: Sequence[str | Path], sink: Sink, *, address: str,
        actors: int, threads: int, batch_size: int, k: int, logits: bool,
        runtime: str | None, precision: str | None, settings: dict | None,
        max_pixels: int | None, pre, done: set, say: Progress) -> tuple[int, int]:
    """Predict every entry not in ``done`` into ``sink``; (predicted, failed)."""
    import ray

    if not ray.is_initialized():
        kwargs = {"num_cpus": actors * threads + 1} if address == "auto" else {"address": address}
        ray.init(**kwargs, log_to_driver=False, include_dashboard=False,
                 logging_level=logging.WARNING)
        logging.getLogger("ray").setLevel(logging.ERROR)  # Ray Data's INFO lines on stderr
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    predicted = failed = 0
    with tempfile.TemporaryDirectory(prefix="vitdeploy-bulk-") as tmp:
        entries, total = _entries_file(data, Path(tmp), done)
        if not total:
            return 0, 0
        ds = ray.data.read_text(str(entries))
        ds = ds.map_batches(_decode, batch_size=batch_size, fn_args=(pre, max_pixels))
        ds = ds.map_batches(_Model, batch_size=batch_size, concurrency=actors, num_cpus=threads,
                            fn_constructor_args=(str(Path(artifact).absolute()), runtime,
                                                 precision, threads, settings, k, logits),
                            max_restarts=-1, max_task_retries=-1)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["image"])):
                row = Row(str(batch["image"][i]), int(batch["size"][i]),
                          int(batch["mtime_ns"][i]), bool(batch["ok"][i]),
                          str(batch["error"][i]) or None,  # "" / -1: none (numpy has no null)
                          int(batch["label"][i]) if int(batch["label"][i]) >= 0 else None,
                          list(map(int, batch["topk_ids"][i])),
                          list(map(str, batch["topk_labels"][i])),
                          list(map(float, batch["topk_scores"][i])),
                          list(map(float, batch["logits"][i])) if logits else None)
                sink.add(row)
                predicted += row.ok
                failed += not row.ok
            say(predicted + failed, max(total, 1), f"{predicted + failed} of {total} images")
    return predicted, failed
