"""``vitdeploy bench``: parse, call ``vitdeploy.bench.bench``, render its records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from .base import (
    AsJson,
    BatchSizes,
    NoVerify,
    Precisions,
    ProgressBar,
    RuntimeNames,
    SavePath,
    Settings,
    app,
    emit,
    handle_errors,
    out,
    parse_batch_sizes,
    parse_settings,
    say,
)

if TYPE_CHECKING:
    from ..bench import BenchReport, BenchRow


@app.command("bench")
@handle_errors
def bench_cmd(
    artifacts: list[Path] = typer.Argument(..., help="Artifact directories to measure."),
    runtime: RuntimeNames = None,
    batch_sizes: BatchSizes = "1,4,8",
    warmup: int = typer.Option(3, "--warmup", help="Untimed runs per artifact and batch size."),
    repeat: Optional[int] = typer.Option(
        None, "--repeat", help="Measured runs per artifact and batch size (default 20)."),
    seconds: Optional[float] = typer.Option(
        None, "--seconds", help="Instead of --repeat: measured seconds per artifact and batch size "
        "(on average; every artifact runs in every round, at least 3 rounds)."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Threads for every runtime and the GEMM probe (default: physical "
        "cores)."),
    precision: Precisions = None,
    setting: Settings = None,
    no_verify: NoVerify = False,
    save: SavePath = None,
    as_json: AsJson = False,
):
    """Measure latency (p50/p90/p99), throughput, load time and memory per artifact and batch size.

    Each artifact runs in a process of its own; the runs are interleaved across artifacts."""
    from ..bench import bench
    from ..check.results import check_save_path

    sizes = parse_batch_sizes(batch_sizes)
    if save is not None:  # refused now, not after minutes of measuring
        check_save_path(save)
    bar = ProgressBar()
    try:
        report = bench(artifacts, runtimes=runtime, batch_sizes=sizes, warmup=warmup,
                       repeat=repeat, seconds=seconds, threads=threads, verify=not no_verify,
                       precisions=precision, settings=parse_settings(setting),
                       progress=bar.update)
    finally:
        bar.stop()
    emit("bench", report.to_dict(), as_json, save, lambda: bench_tables(report))


def _runtime(r: BenchRow) -> str:
    return f"{r.runtime} ({r.detail})" if r.detail else r.runtime


def _precision(r: BenchRow) -> str:
    text = r.artifact_precision if r.artifact_precision == r.compute_precision else \
        f"{r.artifact_precision} / {r.compute_precision}"
    if r.requested_precision not in (None, r.compute_precision):  # e.g. an int8 IR, bf16 asked
        text += f" ({r.requested_precision} asked)"
    return text


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def bench_tables(report: BenchReport, console: Console | None = None) -> None:
    """The bench records as tables and facts; ``console`` for a test's fixed width."""
    console = console or out
    sizes = report.settings["batch_sizes"]
    m = report.machine
    cells: dict[tuple, dict[int, BenchRow]] = {}
    for r in report.results:  # one line per artifact, runtime and precision (computed, asked)
        key = (r.artifact, r.runtime, r.compute_precision, r.requested_precision)
        cells.setdefault(key, {})[r.batch_size] = r
    say(f"{report.threads} threads on {m['cpu']}", console)
    table = Table(title="latency p50 (ms)")
    for col in ("artifact", "model", "runtime", "precision", *(f"bs={b}" for b in sizes)):
        table.add_column(col, justify="right" if col.startswith("bs=") else "left")
    for rows in cells.values():
        first = next(iter(rows.values()))
        table.add_row(first.artifact, first.model or "-", _runtime(first), _precision(first),
                      *(f"{rows[b].p50_ms:.2f}" for b in sizes))
    console.print(table)

    detail = Table(title="detail")
    for col in ("artifact", "runtime", "precision", "bs", "p50 ms", "p90 ms", "p99 ms", "img/s", "load s",
                "peak RSS MB", "GFLOP/s", "% of GEMM", "runs"):
        detail.add_column(col, justify="left" if col in ("artifact", "runtime") else "right")
    for r in report.results:
        detail.add_row(r.artifact, r.runtime, _precision(r), str(r.batch_size), f"{r.p50_ms:.2f}",
                       f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.throughput:.1f}",
                       f"{r.load_s:.2f}", f"{r.peak_rss_mb:.0f}", _num(r.gflops, ".1f"),
                       _num(None if r.of_gemm is None else 100 * r.of_gemm, ".1f"), str(r.samples))
    console.print(detail)

    s = report.settings
    runs = f"{s['repeat']} measured runs" if s["repeat"] else f"~{s['seconds']:g} s measured"
    fastest = min(r.p50_ms for r in report.results)
    lines = [
        f"machine: {m['cpu']}, {m['physical_cores']} physical cores, ISA "
        f"{' '.join(m['isa']) or '(none of the tracked extensions)'}; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v),
        f"threads: {report.threads} for every runtime (and OMP/MKL/OPENBLAS_NUM_THREADS)",
        f"fp32 GEMM (numpy, same threads): {report.gemm_gflops:.1f} GFLOP/s; GFLOP/s counts 2 "
        "per multiply-accumulate (the zoo's FLOPs are MACs)",
        f"per artifact and batch size: {s['warmup']} warmup + {runs}, each artifact in its own "
        "process, interleaved run by run; timing one run costs "
        f"{report.overhead_ms * 1e3:.2f} µs ({report.overhead_ms / fastest:.4%} of the fastest p50)",
    ]
    for line in lines:
        say(line, console)
    seen: set[tuple[str, str]] = set()
    for r in report.results:
        for note in r.notes:
            if (r.artifact, note) not in seen:
                seen.add((r.artifact, note))
                say(f"* {r.artifact}: {note}", console)
