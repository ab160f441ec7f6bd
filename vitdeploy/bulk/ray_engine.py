"""Bulk inference on Ray Data: entries in object-store shards, images decoded in tasks, the model
run in an actor pool (one ``Predictor`` per actor), column batches streamed back to the driver.
The callers (``local.predict_to_file``, ``evaluate.evaluate_on_ray``) write or tally them exactly
as they do in-process.

Invariants:
- the entry list reaches Ray as shards of ``SHARD_ROWS`` entries put in the object store while
  the sources are streamed: never one in-memory list, never a file only the driver's disk has;
- order is preserved: batch rows come back in entry order, so outputs equal in-process ones;
- a killed actor is restarted and its batch retried (Ray Data's actor pools default to
  ``max_restarts=-1``, ``max_task_retries=-1``; an actor that fails to load fails the job):
  every entry comes back exactly once;
- actors x threads per actor never exceed the CPUs Ray has, and CPU is left for reading and
  decoding: actors do not fight over cores, and decoding can always be scheduled;
- ``--ray auto`` runs Ray in its own session (``ray_local``): a terminal's Ctrl-C stops
  vitdeploy (its output kept as ``.partial``), never Ray under it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ArtifactError, OptionError, VitdeployError, first_line
from ..quiet import terminal_only_for_us
from ..resources import physical_cores
from .sources import Entry, stat_key

SHARD_ROWS = 1024  # entries per object-store shard: Ray's unit of reading (and of a retry)
CALL_BYTES = 64 << 20  # crops per Ray call, at most SHARD_ROWS: whole model batches of them.
# At one batch of 32 a call, Ray's cost per call held 1 actor to 0.6x the in-process rate here
# (DeiT digits, 32x32); with calls of 1,024 it runs 1.16x (docs/bulk.md). The model still runs
# --batch-size at a time.
DECODE_CPUS = 0.5  # a light task: it fits beside the actors' whole CPUs
CONNECT_TIMEOUT_S = 5.0


# Runtime settings an actor starts from (the user's --setting wins): ONNX Runtime's threads
# spin while waiting for work, burning the cores that decode tasks and Ray's own processes
# need (DeiT digits, 1 actor x 2 threads, 2 cores: 585 -> 754 images/s without spinning).
ACTOR_DEFAULTS = {"spinning": False}


def actor_settings(artifact: str | os.PathLike, runtime: str | None,
                   settings: dict | None) -> dict | None:
    """``settings`` over ``ACTOR_DEFAULTS``, the defaults kept where the runtime has them."""
    from pathlib import Path

    from ..predictor import resolve_runtime

    cls, _ = resolve_runtime(Path(artifact), runtime)
    merged = {k: v for k, v in ACTOR_DEFAULTS.items() if k in cls.setting_choices}
    merged.update(settings or {})
    return merged or None


@dataclass(frozen=True)
class Plan:
    """Where a bulk run goes: the cluster's address, its actors and threads per actor."""

    address: str
    actors: int
    threads: int


@dataclass(frozen=True)
class Job:
    """What each actor loads and returns."""

    artifact: str  # absolute: actors do not share the driver's working directory
    runtime: str | None
    precision: str | None
    settings: dict | None
    k: int
    logits: bool
    batch_size: int  # the model's batch (--batch-size); a Ray call carries several
    by_raw: bool = False  # top-k of raw outputs (eval's ranking) instead of scores (predict's)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise OptionError(f"--ray {address!r}: expected 'auto' or a Ray head's HOST:PORT "
                          "(e.g. 10.0.0.5:6379, what `ray start --head` prints)")
    return host, int(port)


def _reachable(address: str) -> None:
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise VitdeployError(f"cannot reach a Ray cluster at {address}: {why}; start one there "
                             "with `ray start --head`, or pass --ray auto") from None


def _init(address: str) -> None:
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True)
    except Exception as e:  # noqa: BLE001  (Ray raises many kinds; the user needs one line)
        raise VitdeployError(f"cannot join the Ray cluster at {address}: {first_line(e)}") from None


def _quiet() -> None:
    """Ray Data's log lines (plans, progress, tracebacks) and advice warnings off the user's
    stderr: its logs stay in Ray's session folder. Called after ``import ray.data`` (which sets
    its own levels)."""
    import warnings

    for name in ("ray", "ray.data"):  # errors too: the job's failure is our one line
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")


def _plan(address: str, actors: int, threads: int | None) -> Plan:
    import ray

    nodes = [n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    total, widest = sum(nodes), max(nodes, default=0.0)
    if threads is None:
        threads = max(1, min(int(widest), int((total - 1) // actors)))
    need = actors * threads + DECODE_CPUS
    if threads > widest or need > total:
        raise OptionError(f"--workers {actors} x --threads {threads} does not fit the Ray "
                          f"cluster's {total:g} CPUs ({widest:g} on its widest node) with room "
                          "to decode images; lower --workers or --threads")
    return Plan(address, actors, threads)


@contextlib.contextmanager
def cluster(address: str, actors: int, threads: int | None) -> Iterator[Plan]:
    """A Ray to run on: ``auto`` starts a local one (its own session) for ``actors``; else the
    cluster at ``address``. A Ray this process already joined (library use) is used as it is."""
    from ..ray_local import LocalRay, prepare_environment

    already = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    if address == "auto" and not already:
        prepare_environment()  # before Ray is imported
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    local: LocalRay | None = None
    with terminal_only_for_us():  # Ray's driver prints task errors to stdout, C++ lines to fd 2
        try:
            if already:
                address = "(this process's Ray)"
            elif address == "auto":
                per_actor = threads or max(1, physical_cores() // actors)
                local = LocalRay({"num_cpus": actors * per_actor + 1, "include_dashboard": False,
                                  "log_to_driver": False})
                _init(local.start())
            else:
                _reachable(address)
                _init(address)
            yield _plan(address, actors, threads)
        finally:
            if not already and ray.is_initialized():
                ray.shutdown()
            if local is not None:
                local.stop()


def _shards(entries: Iterable[Entry], rows: int) -> tuple[list, int]:
    """Object refs of Arrow tables of (image, label) entries, ``rows`` each; and their count."""
    import pyarrow as pa
    import ray

    refs, n, chunk = [], 0, []

    def put() -> None:
        table = pa.table({"image": [e.path for e in chunk],
                          "label": [-1 if e.label is None else e.label for e in chunk]})
        refs.append(ray.put(table))
        chunk.clear()

    for e in entries:
        chunk.append(e)
        n += 1
        if len(chunk) == rows:
            put()
    if chunk:
        put()
    return refs, n


def _decode(batch: dict, pre, max_pixels: int | None) -> dict:
    """A Ray task: stat, decode, resize and crop each entry (uint8, a quarter of float32's bytes
    to move); a bad image becomes a failed row."""
    from ..errors import ImageError
    from ..preprocess import crop_image

    cols: dict[str, list] = {k: [] for k in ("image", "size", "mtime_ns", "ok", "error", "label",
                                             "crop")}
    blank = np.zeros((pre.crop_size, pre.crop_size, 3), np.uint8)
    for path, label in zip(batch["image"], batch["label"], strict=True):
        path = str(path)
        size, mtime = stat_key(path)
        try:
            crop, ok, err = crop_image(path, pre, max_pixels), True, ""
        except ImageError as e:
            crop, ok, err = blank, False, str(e)
        for k, v in (("image", path), ("size", size), ("mtime_ns", mtime), ("ok", ok),
                     ("error", err), ("label", int(label)), ("crop", crop)):
            cols[k].append(v)
    return {k: (np.stack(v) if k == "crop" else v) for k, v in cols.items()}


class _Model:
    """A Ray actor of the pool: one Predictor, loaded once. ``actor_class`` bakes the job into a
    subclass: an actor without constructor arguments restarts with nothing to fetch.

    Returns fixed-width arrays (top-k ids and scores; -1 / 0 on a failed row): cheap to move;
    the driver turns ids into labels."""

    job: Job
    threads: int

    def __init__(self) -> None:
        from ..predictor import Predictor

        job, threads = self.job, self.threads
        try:
            self.pred = Predictor(job.artifact, runtime=job.runtime, precision=job.precision,
                                  threads=threads, settings=job.settings, verify=False)
            info = self.pred.info
            size = info.preprocess.crop_size
            self.classes = self.pred.predict_batch(np.zeros((1, 3, size, size),
                                                            np.float32)).shape[1]
        except Exception as e:  # a plain error crosses to the driver's one line intact
            raise ArtifactError(f"a Ray worker on {socket.gethostname()} could not load "
                                f"{job.artifact}: {first_line(e)}") from None
        rt = self.pred.runtime
        self.runtime = json.dumps({"name": rt.name, "artifact_precision": rt.artifact_precision,
                                   "compute_precision": rt.compute_precision,
                                   "detail": rt.detail, "notes": list(rt.notes)})

    def __call__(self, batch: dict) -> dict:
        """One Ray call of several model batches (Ray's per-call cost spread over them)."""
        from ..predictor import topk
        from ..preprocess import normalize

        job, pred = self.job, self.pred
        ok = np.asarray(batch["ok"], bool)
        n, k = len(ok), min(job.k, self.classes)
        ids = np.full((n, k), -1, np.int32)
        scores = np.zeros((n, k), np.float32)
        raw = np.zeros((n, self.classes if job.logits else 0), np.float32)
        for start in range(0, n, job.batch_size):  # the in-process chunks: --batch-size entries
            rows = start + np.flatnonzero(ok[start:start + job.batch_size])
            if not len(rows):
                continue
            out = pred.predict_batch(normalize(batch["crop"][rows], pred.info.preprocess))
            ranked = topk(out if job.by_raw else pred.scores(out), k, ())
            ids[rows] = [[t.class_id for t in top] for top in ranked]
            scores[rows] = [[t.score for t in top] for top in ranked]
            if job.logits:
                raw[rows] = out
        cols = {k: batch[k] for k in ("image", "size", "mtime_ns", "ok", "error", "label")}
        cols.update(topk_ids=ids, topk_scores=scores, logits=raw,
                    runtime=np.array([self.runtime] * n, dtype=object))
        return cols


def actor_class(job: Job, threads: int) -> type[_Model]:
    return type("BulkModel", (_Model,), {"job": job, "threads": threads})


def _worker_error(e: Exception) -> VitdeployError:
    """One line for a failed Ray job: our own error's text where a worker raised one."""
    seen, cause = set(), e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, VitdeployError):
            return cause
        cause = getattr(cause, "cause", None) or cause.__cause__
    text = first_line(e)
    mark = "ArtifactError: "  # an actor's creation error arrives as text in RayActorError
    if mark in str(e):
        return ArtifactError(str(e).split(mark, 1)[1].strip().splitlines()[0])
    return VitdeployError(f"the Ray job failed: {text}")


def stream(entries: Iterable[Entry], job: Job, plan: Plan, *,
           max_pixels: int | None, pre) -> tuple[int, Iterator[dict]]:
    """(number of entries, their result batches in entry order); columns: image, size,
    mtime_ns, ok, error, label (the decode task's) and topk_ids, topk_scores, logits, runtime
    (the actor's)."""
    import ray
    import ray.data

    _quiet()
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    refs, total = _shards(entries, SHARD_ROWS)

    def batches() -> Iterator[dict]:
        if not refs:
            return
        ds = ray.data.from_arrow_refs(refs)
        fits = min(SHARD_ROWS, CALL_BYTES // (3 * pre.crop_size ** 2))
        call = job.batch_size * max(1, fits // job.batch_size)  # whole model batches a call
        ds = ds.map_batches(_decode, batch_size=call, fn_args=(pre, max_pixels),
                            num_cpus=DECODE_CPUS)
        pool = ray.data.ActorPoolStrategy(size=plan.actors)
        ds = ds.map_batches(actor_class(job, plan.threads), batch_size=call, compute=pool,
                            num_cpus=plan.threads)  # Ray Data's default: restarts, retries
        try:
            yield from ds.iter_batches(batch_size=None, batch_format="numpy")
        except VitdeployError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _worker_error(e) from None

    return total, batches()
