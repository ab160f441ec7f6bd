"""``vitdeploy optimize``: parse, call ``vitdeploy.search.optimize``, render its records."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from .base import (
    AsJson,
    ProgressBar,
    SavePath,
    Threads,
    app,
    emit,
    err,
    handle_errors,
    out,
    say,
)

if TYPE_CHECKING:
    from ..search import CandidateRow, OptimizeReport


@app.command("optimize")
@handle_errors
def optimize_cmd(
    src: Path = typer.Argument(..., help="A Paddle export directory (vitdeploy export), or a "
                               ".pdparams checkpoint with --model."),
    eval_data: Optional[Path] = typer.Option(
        None, "--eval-data", help="Labelled images every candidate is scored on: an ImageNet-style "
        "folder or a PaddleClas list file (required)."),
    calib: Optional[Path] = typer.Option(
        None, "--calib", help="Calibration images for static int8 (training-style, never the "
        "evaluation images); without it the static int8 candidates are skipped."),
    max_drop: float = typer.Option(
        0.5, "--max-drop", help="Accuracy budget: top-1 points a winner may lose against Paddle "
        "fp32 on --eval-data."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="Batch size everything is measured at (default 1; 8 with "
        "--objective throughput)."),
    threads: Threads = None,
    runtime: Optional[list[str]] = typer.Option(
        None, "--runtime", "-r", help="Only these runtimes (repeatable): paddle, onnxruntime, "
        "openvino, lite (Lite x86 is tried only when named)."),
    precision: Optional[list[str]] = typer.Option(
        None, "--precision", help="Only these precisions (repeatable): fp32, fp16, bf16, int8."),
    objective: str = typer.Option(
        "latency", "--objective", help="latency (p50 at the batch size) or throughput (images/s "
        "at the batch size, from the mean run time)."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", help="Where candidates are built (reused on a rerun), the winner copied "
        "to OUT/best and OUT/optimize.json written (default: SRC-opt beside SRC)."),
    model: Optional[str] = typer.Option(None, "--model", help="Architecture of a checkpoint SRC."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="labels.txt for a checkpoint SRC."),
    limit: Optional[int] = typer.Option(
        None, "--limit", help="Score on N evaluation images, evenly spread (default: all)."),
    repeat: int = typer.Option(20, "--repeat", help="Timed runs per candidate."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs per candidate before timing."),
    no_early_stop: bool = typer.Option(
        False, "--no-early-stop", help="Time every candidate fully, even one that cannot win."),
    force: bool = typer.Option(
        False, "--force", help="Build into a non-empty --out that no optimize run wrote."),
    save: SavePath = None,
    as_json: AsJson = False,
):
    """Find the fastest artifact for this machine within an accuracy budget, and prove it.

    Every candidate (runtime x precision this machine can run) is built, checked for parity
    against Paddle fp32, scored on --eval-data and timed in its own process, interleaved.
    Exit 2 when no candidate meets --max-drop with parity."""
    from ..check.results import check_save_path
    from ..search import optimize

    if save is not None:
        check_save_path(save)
    if batch_size is None:
        batch_size = 8 if objective == "throughput" else 1
    bar = ProgressBar(eta=True, log=_log_line)
    # Ctrl-C while a backend is being imported surfaces as "ImportError: initialization failed":
    # the handler remembers it, so any failure after a Ctrl-C is reported as the interrupt
    interrupted: list[bool] = []

    def on_sigint(_signum: int, _frame: object) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        report = optimize(src, eval_data=eval_data, calib=calib, max_drop=max_drop,
                          batch_size=batch_size,
                          threads=threads, runtimes=runtime, precisions=precision,
                          objective=objective, out=out_dir, model=model, labels=labels,
                          limit=limit, repeat=repeat, warmup=warmup,
                          early_stop=not no_early_stop, force=force, progress=bar.update)
    except Exception:
        if not interrupted:
            raise
        _interrupted(bar)
    except KeyboardInterrupt:
        _interrupted(bar)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.stop()
    emit("optimize", report.to_dict(), as_json, save, lambda: optimize_table(report))
    if not report.met:
        closest = _closest(report)
        err.print(f"error: no candidate meets --max-drop {report.max_drop:g} with parity"
                  + (f"; the closest: {closest}" if closest else ""), markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def _interrupted(bar: ProgressBar) -> None:
    bar.stop()
    err.print("error: interrupted; every finished candidate is kept under --out: rerun the "
              "same command to resume", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(130) from None


def _log_line(message: str) -> str | None:
    """In a log: one line per step and candidate, not one per timing round."""
    if not message.startswith("step") or message.startswith("step 3/3: timing: round"):
        return None
    return message


def _f(value: float | None, fmt: str, suffix: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + suffix


def _precision(r: CandidateRow) -> str:
    if r.artifact_precision == r.compute_precision or not r.compute_precision:
        return r.artifact_precision or r.precision
    return f"{r.artifact_precision} / {r.compute_precision}"


def _parity(r: CandidateRow) -> str:
    if r.status != "ok":
        return "-"
    return "pass" if r.parity_passed else "FAIL"


def _closest(report: OptimizeReport) -> str | None:
    """The best found: the most accurate candidate with parity, else the most accurate."""
    rows = [r for r in report.results if r.contender and r.top1 is not None]
    if not rows:
        return None
    r = max(rows, key=lambda r: (r.parity_passed, r.top1))
    return (f"{r.name} (Δ top-1 {_f(r.delta_top1, '+.2f')} points, parity "
            f"{'pass' if r.parity_passed else 'FAIL'})")


def optimize_table(report: OptimizeReport, console: Console | None = None) -> None:
    console = console or out
    cost = "p50 ms" if report.objective == "latency" else "img/s"
    table = Table(title="optimize: every candidate")
    for col in ("candidate", "runtime", "precision", "top-1 %", "Δ top-1", "parity", "p50 ms",
                "p90 ms", "img/s", "speed-up", "Pareto", "verdict"):
        table.add_column(col, justify="left" if col in ("candidate", "runtime", "precision",
                                                        "parity", "verdict") else "right")
    for r in report.results:
        verdict = ("WINNER" if r.winner else "baseline" if r.baseline and not r.contender
                   else r.status if r.status != "ok" else "within budget" if r.within_budget
                   else "over budget")
        if r.timing_note:
            verdict += " (timing stopped early)"
        table.add_row(r.name, r.runtime, _precision(r), _f(r.top1 and 100 * r.top1, ".2f"),
                      _f(r.delta_top1, "+.2f"), _parity(r), _f(r.p50_ms, ".3f"),
                      _f(r.p90_ms, ".3f"), _f(r.throughput, ".1f"), _f(r.speedup, ".2f", "x"),
                      "yes" if r.pareto else "", verdict)
    console.print(table)
    m = report.machine
    ev = report.eval_data
    lines = [
        f"objective: {report.objective} ({cost}) at batch size {report.batch_size}, "
        f"{report.threads} threads on {m['cpu']} (ISA {' '.join(m['isa']) or 'none tracked'})",
        f"budget: at most {report.max_drop:g} top-1 points below Paddle fp32 "
        f"({100 * report.baseline_top1:.2f} % on {ev['images']} images of {ev['path']}) and parity",
    ]
    if report.winner:
        w = next(r for r in report.results if r.winner)
        lines.append(f"winner: {w.name}, {_f(w.speedup, '.2f', 'x')} Paddle fp32, Δ top-1 "
                     f"{_f(w.delta_top1, '+.2f')} points; copied to {report.best}")
        lines.append(f"run it: {report.command}")
    for name, why in report.skipped.items():
        if not why.startswith("not among"):
            lines.append(f"not tried: {name}: {why}")
    for r in report.results:
        if r.timing_note:
            lines.append(f"{r.name}: {r.timing_note}")
        if r.parity_failures and r.status == "ok":
            lines.append(f"{r.name}: parity: {'; '.join(r.parity_failures)}")
    lines += report.notes
    reused = sum(r.reused for r in report.results)
    lines.append(f"search: {report.seconds:.0f} s ({reused} candidates reused from "
                 f"{report.out}); result: {Path(report.out) / 'optimize.json'}")
    for line in lines:
        say(line, console)
