"""``optimize``: the fastest artifact for this machine within an accuracy budget, found by
building, checking and timing every candidate (candidates.py), and proven by its row.

Order of work: everything the user gave is validated before anything is written; then each
candidate is built (reused when unchanged), its accuracy and parity measured (cached with the
build), and finally all are timed together, interleaved, each in its own process. The winner is
copied to OUT/best and the report written to OUT/optimize.json. Ctrl-C at any point leaves every
finished candidate (and its measurements) for the next run to reuse.
"""

from __future__ import annotations

import functools
import math
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..about import __version__
from ..artifact import artifact_kind, read_artifact_info, verify_artifact
from ..bench.records import machine_info
from ..check.results import save_result
from ..errors import ImageError, OptionError, VitdeployError, first_line
from ..options import positive_int
from ..precision import judged
from ..resources import check_threads, physical_cores
from . import build as builder
from . import measure as meas
from .candidates import BASELINE, Candidate, get, plan
from .records import OBJECTIVES, CandidateRow, OptimizeReport, mark_pareto, pick_winner
from .timing import MIN_RUNS, SLOW_FACTOR, Timed, time_all

RESULT = "optimize.json"
DEFAULT_REPEAT, DEFAULT_WARMUP = 20, 3
CHECKPOINT_SUFFIXES = (".pdparams",)
Progress = Callable[[float, float, str], None]  # (done, total, what runs now)


@dataclass
class _Item:
    c: Candidate
    row: CandidateRow
    folder: Path | None = None
    measured: meas.Measured | None = None
    key: str = ""


def _check(max_drop: float, batch_size: int, objective: str, repeat: int, warmup: int,
           limit: int | None, threads: int | None, eval_data: str | Path | None,
           calib: str | Path | None) -> None:
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) \
            or not math.isfinite(max_drop) or not 0 <= max_drop <= 100:
        raise OptionError(f"--max-drop {max_drop} is out of range; top-1 points from 0 to 100")
    positive_int(batch_size, "--batch-size", 1, 4096)
    positive_int(repeat, "--repeat", 1, 100_000)
    positive_int(warmup, "--warmup", 0, 100_000)
    if limit is not None:
        positive_int(limit, "--limit")
    check_threads(threads)
    if objective not in OBJECTIVES:
        raise OptionError(f"unknown --objective {objective!r}; choose {', '.join(OBJECTIVES)}")
    if eval_data is None:
        raise OptionError("optimize measures accuracy: pass --eval-data DATA (an ImageNet-style "
                          "folder or a PaddleClas list file of labelled images)")
    if not Path(eval_data).exists():
        raise ImageError(f"--eval-data {eval_data} not found (an ImageNet-style folder or a "
                         "PaddleClas list file expected)")
    if calib is not None:
        from ..preprocess import collect_images

        if not Path(calib).is_dir():
            raise ImageError(f"--calib {calib} is not a folder of images")
        collect_images([calib])  # one line when it holds none


def _source(src: Path, model: str | None, labels: str | Path | None) -> bool:
    """True for a checkpoint (exported first), False for an export; checked before any work."""
    if src.is_file() and src.suffix in CHECKPOINT_SUFFIXES:
        if not model:
            raise OptionError(f"{src} is a checkpoint: name its architecture with --model "
                              "(see 'vitdeploy models')")
        from ..models import get_config

        get_config(model)
        return True
    if not src.is_dir():
        raise OptionError(f"source {src} not found: pass an export directory (vitdeploy export) "
                          "or a .pdparams checkpoint with --model")
    verify_artifact(src)
    kind = artifact_kind(src)
    if kind != "paddle":
        raise OptionError(f"{src} is not a Paddle export ({f'it holds {kind}' if kind else 'no model'}); "
                          "optimize starts from one (vitdeploy export): the baseline every "
                          "candidate is held to")
    read_artifact_info(src)  # its inference.yml: the preprocessing every candidate shares
    return False


@dataclass
class _Job:
    """One call's inputs, validated: what the search runs on."""

    src: Path
    is_ckpt: bool
    out: Path
    eval_path: Path
    calib: Path | None
    max_drop: float
    batch: int
    threads: int
    objective: str
    model: str | None
    labels: Path | None
    limit: int | None
    repeat: int
    warmup: int
    early_stop: bool


def optimize(src: str | Path, *, eval_data: str | Path | None, calib: str | Path | None = None,
             max_drop: float = 0.5, batch_size: int = 1, threads: int | None = None,
             runtimes: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
             objective: str = "latency", out: str | Path | None = None,
             model: str | None = None, labels: str | Path | None = None,
             limit: int | None = None, repeat: int = DEFAULT_REPEAT,
             warmup: int = DEFAULT_WARMUP, early_stop: bool = True, force: bool = False,
             progress: Progress | None = None) -> OptimizeReport:
    """Build, check and time every candidate this machine can run; returns every row, the
    winner (None when no contender meets ``max_drop`` top-1 points and parity) and where it
    was copied. ``src``: an export directory, or a ``.pdparams`` checkpoint with ``model``."""
    start = time.perf_counter()
    say = progress or (lambda _d, _t, _m: None)
    src = Path(src)
    _check(max_drop, batch_size, objective, repeat, warmup, limit, threads, eval_data, calib)
    is_ckpt = _source(src, model, labels)
    the_plan = plan(runtimes, precisions, calib is not None)
    out = Path(out) if out is not None else src.with_name(f"{src.stem}-opt")
    builder.check_out(out, src, force)
    job = _Job(src, is_ckpt, out, Path(str(eval_data)), Path(calib) if calib else None,
               float(max_drop), batch_size, threads or physical_cores(), objective, model,
               Path(labels) if labels else None, limit, repeat, warmup, early_stop)
    meas.check_eval(job.eval_path, None if is_ckpt else src, job.labels)
    # nothing written above this line; a failure before the first build leaves nothing either
    with builder.started(out):
        src_dir, data, items = _prepare(job, the_plan.planned, say)
    for k, it in enumerate(items):
        say(k, len(items), f"step 1/3: building {it.c.name}")
        _build(it, src_dir, job, data.fingerprints, lambda m: say(0, 1, m))
    _measure_all(items, src_dir, job, data, say)
    for it in items:
        r = it.row
        r.within_budget = bool(r.status == "ok" and r.parity_passed and r.delta_top1 is not None
                               and r.delta_top1 >= -job.max_drop - 1e-9)
    _time(items, job, say)
    rows = [it.row for it in items]
    mark_pareto(rows, objective)
    win = pick_winner(rows, objective)
    best = command = None
    if win is not None:
        win.winner = True
        folder = next(it.folder for it in items if it.row is win)
        best = str(builder.copy_best(folder, out))
        command = _command(best, win)
    else:  # an earlier run's winner must not pass for this run's
        builder.drop_best(out)
    report = OptimizeReport(
        str(src), str(out), objective, batch_size, job.threads, job.max_drop,
        {"path": str(job.eval_path), "images": data.n, "skipped": len(data.skipped),
         "parity_images": len(data.parity_idx)},
        str(job.calib) if job.calib else None, items[0].row.top1 or 0.0, rows,
        the_plan.skipped, win.name if win else None, win is not None, best, command,
        machine_info(job.threads), {"repeat": repeat, "warmup": warmup, "min_runs": MIN_RUNS,
                                    "early_stop": early_stop, "slow_factor": SLOW_FACTOR,
                                    "method": "each candidate in its own process, interleaved "
                                              "run by run (vitdeploy bench's method)"},
        time.perf_counter() - start, _notes(rows, data, objective))
    save_result("optimize", report.to_dict(), out / RESULT)  # validated as it is written
    return report


def _prepare(job: _Job, planned: list[Candidate], say: Progress
             ) -> tuple[Path, meas.EvalData, list[_Item]]:
    """The export (a checkpoint is exported first), the evaluation images, a row per candidate."""
    note = lambda m: say(0, 1, m)  # noqa: E731
    src_dir = job.src
    if job.is_ckpt:
        src_dir = builder.export_checkpoint(str(job.model), job.src, job.labels, job.out, note)[0]
    data = meas.load_eval(job.eval_path, src_dir, job.limit, note)
    data.fingerprints = {"calib": builder.fingerprint(job.calib),
                         "eval": builder.fingerprint(job.eval_path),
                         "source": builder.source_files(src_dir)}
    order = [get(BASELINE), *(c for c in planned if c.name != BASELINE)]
    names = {c.name for c in planned}
    return src_dir, data, [_Item(c, _row(c, c.name in names)) for c in order]


def _row(c: Candidate, contender: bool) -> CandidateRow:
    return CandidateRow(c.name, c.runtime, c.summary, "", c.precision, "", "", "pending",
                        contender=contender, baseline=c.name == BASELINE,
                        tuned_on_eval=c.uses_eval, settings=dict(c.settings),
                        requested_precision=c.compute)


def _build(it: _Item, src: Path, job: _Job, prints: dict, say: Callable[[str], None]) -> None:
    """Build (or reuse) one candidate; a failure is that candidate's row, not the search's end."""
    if it.c.target is None:
        it.folder, it.key = src, builder.digest(prints["source"])
    else:
        try:
            it.folder, it.row.reused, it.row.build_s = builder.build(
                it.c, src, job.out, job.calib, job.eval_path, job.max_drop, prints, say)
            it.key = builder.read_state(job.out, it.c.folder).get("key", "")
        except VitdeployError as e:
            it.row.status = f"failed: {first_line(e)}"
            return
    it.row.artifact = str(it.folder)
    it.row.status = "ok"


def _measure_all(items: list[_Item], src: Path, job: _Job, data: meas.EvalData,
                 say: Progress) -> None:
    """Accuracy and parity of every built candidate; cached per candidate (same build, data,
    runtime, precision, settings, batch size) so a rerun only re-times."""
    ref: meas.Reference | None = None
    out, batch, threads = job.out, job.batch, job.threads
    for k, it in enumerate(items):
        if it.row.status != "ok":
            continue
        say(k, len(items), f"step 2/3: accuracy and parity of {it.c.name}")
        key = builder.digest({"build": it.key, "runtime": it.c.runtime, "compute": it.c.compute,
                              "settings": it.c.settings, "eval": data.fingerprints["eval"],
                              "limit": job.limit,
                              "batch": batch, "vitdeploy": __version__})
        cached = builder.read_state(out, f"{it.c.name}.measured")
        if cached.get("key") == key:
            it.measured = meas.Measured.from_dict(cached["measured"])
        step = functools.partial(say, k, len(items))
        try:
            if it.measured is None:
                if ref is None:  # the baseline first: every other row is held to it
                    ref, base = meas.reference(items[0].c, src, data, batch, threads, step)
                    if it is items[0]:
                        it.measured = base
                if it.measured is None:
                    it.measured = meas.measure(it.c, it.folder, data, ref, batch, threads, step)
                builder.write_state(out, f"{it.c.name}.measured",
                                    {"key": key, "measured": it.measured.to_dict()})
        except VitdeployError as e:
            it.row.status = f"failed: {first_line(e)}"
            continue
        _fill(it.row, it.measured, items[0].measured)


def _fill(r: CandidateRow, m: meas.Measured, base: meas.Measured | None) -> None:
    r.top1, r.top5, r.agreement = m.top1, m.top5, m.agreement
    r.artifact_precision, r.compute_precision = m.artifact_precision, m.compute_precision
    r.precision = judged(m.artifact_precision, m.compute_precision)
    r.delta_top1 = (m.top1 - base.top1) * 100 if base is not None else None
    r.parity_passed, r.parity_failures = m.parity.passed, list(m.parity.failures)
    r.cosine_min, r.max_abs = m.parity.cosine_min, m.parity.max_abs
    r.notes = list(dict.fromkeys(m.notes + m.parity.notes))


def _time(items: list[_Item], job: _Job, say: Progress) -> None:
    batch, objective = job.batch, job.objective
    units = [(it, Timed(it.c.name, str(it.folder), it.c.runtime, it.c.compute,
                        dict(it.c.settings) or None, it.row.within_budget and it.row.contender,
                        keep=it.row.baseline))
             for it in items if it.row.status == "ok" and it.row.top1 is not None]
    time_all([u for _, u in units], batch, job.threads, job.warmup, job.repeat, job.early_stop,
             lambda d, t, m: say(d, t, f"step 3/3: {m}"))
    base = next((u for it, u in units if it.row.baseline), None)
    for it, u in units:
        r = it.row
        r.p50_ms, r.p90_ms, r.samples, r.timing_note = u.p(50), u.p(90), len(u.times), u.stopped
        mean = sum(u.times) / len(u.times)
        r.throughput = batch / mean if mean > 0 else None
        lite = ["timed inside the Lite worker (the hand-over between processes excluded)"] \
            if r.runtime == "lite" else []
        r.notes = list(dict.fromkeys(r.notes + u.notes + lite))
    if base is not None and base.times:
        b = next(it.row for it, u in units if u is base)
        for it, _ in units:
            r = it.row
            if objective == "latency" and r.p50_ms:
                r.speedup = b.p50_ms / r.p50_ms
            elif r.throughput and b.throughput:
                r.speedup = r.throughput / b.throughput


def _command(best: str, r: CandidateRow) -> str:
    """How to run the winner as it was measured (runtime, precision, settings)."""
    args = ["vitdeploy", "predict", best, "IMAGE...", "--runtime", r.runtime]
    if r.requested_precision:
        args += ["--precision", r.requested_precision]
    for k, v in sorted(r.settings.items()):
        args += ["--setting", f"{k}={v}"]
    return " ".join(a if a == "IMAGE..." else shlex.quote(a) for a in args)


NEAR_TIE = 0.05  # a runner-up this close to the winner's cost is within run-to-run noise


def _notes(rows: list[CandidateRow], data: meas.EvalData, objective: str) -> list[str]:
    notes = []
    win = next((r for r in rows if r.winner), None)
    if win is not None:
        close = [r.name for r in rows if r is not win and r.contender and r.within_budget
                 and r.cost(objective) <= win.cost(objective) * (1 + NEAR_TIE)]
        if close:
            notes.append(f"near tie: {', '.join(close)} within {NEAR_TIE:.0%} of the winner's "
                         f"{objective}; another run may pick {'one of them' if len(close) > 1 else 'it'}")
    if data.n < 1000:
        notes.append(f"{data.n} evaluation images: one image is {100 / data.n:.2f} top-1 points")
    if data.skipped:
        notes.append(f"{len(data.skipped)} evaluation images skipped (first: {data.skipped[0][1]})")
    for r in rows:
        if r.tuned_on_eval:
            notes.append(f"{r.name}: accuracy control tuned on the evaluation images, so its Δ "
                         "top-1 is not an independent estimate")
    return notes
