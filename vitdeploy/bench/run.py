"""``vitdeploy bench``: latency, throughput, load time and memory per artifact, runtime and batch.

Each (artifact, runtime) runs in a persistent child process of its own (``worker.py``, spoken to
through ``child.py``): runtimes sharing one process slow each other (OpenMP pools, ONNX Runtime's
spinning threads, OpenVINO's TBB). The parent interleaves them, one measured run per request: A,
B, C, A, B, C, ... so a drift in the machine's load favours none; warmup runs are not measured.
The child times ``Runtime.predict`` only, on an input it allocated once (no preprocessing, no hand-over), and
reports its peak RSS. A short float32 GEMM in another child, on the same thread count, gives the
machine's rate that each row's effective GFLOP/s is compared with.

FLOPs: the zoo counts multiply-accumulates (the seed tables' "FLOPs"); a row's ``gflops`` counts
two floating-point operations per multiply-accumulate, like the GEMM's 2n³.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitdeployError
from ..options import batch_sizes as check_batch_sizes
from ..options import positive_int
from ..resources import (
    MEMORY_SHARE,
    available_memory,
    batch_bytes,
    check_memory,
    check_threads,
    gib,
    inference_bytes,
)
from .child import GEMM_N, GEMM_SECONDS, Child, wait_quiet
from .records import BenchReport, BenchRow, machine_info

DEFAULT_REPEAT = 20  # measured runs per artifact and batch size when neither repeat nor seconds
MIN_ROUNDS = 3  # with seconds: at least this many measured runs per artifact and batch size
RUNS_PER_REQUEST = 1  # measured runs per request before the parent moves to the next artifact
# Untimed runs before them (at least REWARM, for at least REWARM_SECONDS): the threads and the CPU
# that idled while the others ran are back to steady state. Measured on DeiT-tiny bs 1 (ONNX
# Runtime, 10 paired runs against a plain back-to-back loop): one untimed run left the p50 ~5%
# slower, 50 ms of runs +2.4%, 100 ms -0.7% (within the machine's noise).
REWARM, REWARM_SECONDS = 1, 0.1
OVERHEAD_RUNS = 200

Progress = Callable[[float, float, str], None]  # (done, total, what is running now)


def validate(batch_sizes: Sequence[int], warmup: int, repeat: int | None, seconds: float | None,
             threads: int | None) -> None:
    """Bad settings, each in one line, before anything runs."""
    check_batch_sizes(batch_sizes)
    positive_int(warmup, "--warmup", minimum=0)
    if repeat is not None and seconds is not None:
        raise VitdeployError("--repeat and --seconds both given; pass one (runs per batch size, or "
                             "seconds per artifact and batch size)")
    if repeat is not None:
        positive_int(repeat, "--repeat")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not math.isfinite(seconds) or seconds <= 0):
        raise VitdeployError(f"--seconds must be a finite number of seconds > 0, got {seconds!r}")
    check_threads(threads)


@dataclass
class _Unit:
    artifact: str
    runtime: str
    model: str | None
    precision: str | None = None  # the compute precision asked of the runtime, if any
    input_size: int = 224
    model_bytes: int = 0  # the artifact's files: what loading it costs, at least


def _units(artifacts: Sequence[str | Path], runtimes: Sequence[str] | None, verify: bool,
           precisions: Sequence[str] | None = None) -> list[_Unit]:
    """Every (artifact, runtime, precision) checked as Predictor would, before any process
    starts: the manifest's digests, the deploy config, a model file the runtime can load. Each
    of ``precisions`` applies where the runtime offers it (OpenVINO: fp32, bf16, fp16); a
    runtime that offers none runs its model file as it is, once."""
    from ..artifact import read_artifact_info, verify_artifact
    from ..predictor import resolve_runtime
    from ..runtimes import RUNTIMES, get_runtime

    for name in runtimes or ():
        get_runtime(name)
    offered = {cls.name: cls.precision_choices for cls in RUNTIMES.values() if cls.precision_choices}
    for p in precisions or ():
        if not any(p in choices for choices in offered.values()):
            raise VitdeployError(f"no runtime computes in precision {p!r}; offered: " + "; ".join(
                f"{name}: {', '.join(choices)}" for name, choices in offered.items()))
    units = []
    for art in artifacts:
        if verify:
            verify_artifact(art)
        info = read_artifact_info(art)
        for name in runtimes or [None]:
            cls, path = resolve_runtime(info.directory, name)
            mine = [p for p in dict.fromkeys(precisions or ()) if p in cls.precision_choices]
            for p in mine or [None]:
                units.append(_Unit(str(art), cls.name, info.manifest.get("model"), p,
                                   info.preprocess.crop_size, _files_bytes(path)))
    return units


def _files_bytes(model_path: Path) -> int:
    """The model file and its weights beside it (an IR's .bin, Paddle's .pdiparams)."""
    stem = model_path.with_suffix("")
    return sum(p.stat().st_size for p in model_path.parent.iterdir()
               if p.is_file() and p.with_suffix("") == stem)


def _unit_settings(u: _Unit, settings: dict[str, object] | None) -> dict[str, object] | None:
    from ..predictor import settings_for
    from ..runtimes import get_runtime

    mine = settings_for(u.artifact, u.runtime, settings)
    return get_runtime(u.runtime).check_settings(mine) if mine else None


def check_bench_memory(units: Sequence[_Unit], batch_sizes: Sequence[int]) -> None:
    """Every artifact's process stays alive through the run, each holding its weights (counted
    twice: the file as read and the runtime's own copy) and, while it runs, its largest batch
    and that batch's activations. Refused in one line, before any process starts, when that
    sum would not fit in the memory available now."""
    top = max(batch_sizes)
    weights = sum(2 * u.model_bytes for u in units)
    need = weights + sum(inference_bytes(top, u.input_size) for u in units)
    per_image = sum(inference_bytes(1, u.input_size) for u in units)
    fits = int((MEMORY_SHARE * available_memory() - weights) // per_image)
    size = max(u.input_size for u in units)
    fix = (f"pass smaller --batch-sizes (at most about {fits} here)" if fits >= 1
           else "free memory, or bench fewer artifacts at once")
    check_memory(need, f"bench at batch size {top} ({gib(batch_bytes(top, size))} of {size}x{size} "
                       "input, plus activations and weights)", fix)


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def bench(artifacts: Sequence[str | Path], *, runtimes: Sequence[str] | None = None,
          batch_sizes: Sequence[int] = (1, 4, 8), warmup: int = 3, repeat: int | None = None,
          seconds: float | None = None, threads: int | None = None, verify: bool = True,
          precisions: Sequence[str] | None = None, progress: Progress | None = None,
          settings: dict[str, object] | None = None) -> BenchReport:
    """Measure every artifact on its own runtime (or each of ``runtimes``) at every batch size.

    ``repeat``: measured runs per artifact and batch size (default 20); ``seconds`` instead: each
    batch size runs rounds until ``seconds`` x (number of artifacts) seconds have been measured,
    every artifact once per round (at least 3 rounds). ``threads``: for every runtime and the GEMM
    probe (default: physical cores). ``precisions``: compute precisions to measure where a
    runtime offers them (e.g. OpenVINO fp32 and bf16 of one IR). Everything is validated before
    any process starts."""
    from ..runtimes import physical_cores

    say = progress or (lambda _done, _total, _msg: None)
    if not artifacts:
        raise VitdeployError("no artifact to benchmark; pass one or more artifact directories")
    validate(batch_sizes, warmup, repeat, seconds, threads)
    if repeat is None and seconds is None:
        repeat = DEFAULT_REPEAT
    threads = threads or physical_cores()
    units = _units(artifacts, runtimes, verify, precisions)
    check_bench_memory(units, batch_sizes)
    per_unit = [_unit_settings(u, settings) for u in units]  # refused now, not in a child
    report = BenchReport(machine_info(threads), threads, float("nan"), [], float("nan"),
                         {"batch_sizes": list(batch_sizes), "warmup": warmup, "repeat": repeat,
                          "seconds": seconds, "runs_per_request": RUNS_PER_REQUEST,
                          "untimed_per_request": f">= {REWARM} run(s) and >= "
                                                 f"{REWARM_SECONDS * 1e3:g} ms",
                          "flops": "2 x multiply-accumulates",
                          "settle": "after each request, the next waits until that process is "
                                    "idle (its threads stop spinning)"})
    children: list[Child] = []
    try:
        say(0, 1, f"fp32 GEMM {GEMM_N}x{GEMM_N} on {threads} threads")
        probe = Child("the GEMM probe", threads)
        children.append(probe)
        report.gemm_gflops = probe.ask("gemm", n=GEMM_N, seconds=GEMM_SECONDS)["gflops"]
        # the zoo imports Paddle: counted in the probe, so no artifact's process (or RSS) pays it
        macs = probe.ask("macs", models=sorted({u.model for u in units if u.model}))["macs"]
        probe.close()
        children.remove(probe)
        loads, overhead = [], []
        for u, mine in zip(units, per_unit, strict=True):  # one at a time: loads do not compete
            say(0, 1, f"loading {u.artifact} on {u.runtime}")
            children.append(Child(f"{u.artifact} ({u.runtime})", threads))
            loads.append(children[-1].ask("load", artifact=u.artifact, runtime=u.runtime,
                                          threads=threads, precision=u.precision, settings=mine))
            children[-1].pids = loads[-1]["pids"]
            wait_quiet(children[-1].pids)
            overhead += children[-1].ask("overhead", runs=OVERHEAD_RUNS)["times"]
        report.overhead_ms = _percentile(overhead, 50) * 1e3
        times, rss = _measure(children, units, batch_sizes, warmup, repeat, seconds, report, say)
    finally:
        for child in children:
            child.close()
    for i, (u, loaded) in enumerate(zip(units, loads, strict=True)):
        for b in batch_sizes:
            report.results.append(_row(u, loaded, b, times[i][b], rss[i][b], macs.get(u.model),
                                       report.gemm_gflops))
    return report


def _measure(children: list[Child], units: list[_Unit], batch_sizes: Sequence[int], warmup: int,
             repeat: int | None, seconds: float | None, report: BenchReport, say: Progress):
    """Per batch size: warm every artifact up, then rounds of one request to each in turn."""
    n = len(children)
    per_batch = n * (warmup + repeat * RUNS_PER_REQUEST) if repeat else n * seconds
    total = len(batch_sizes) * per_batch
    times: list[dict[int, list[float]]] = [{} for _ in children]
    rss: list[dict[int, float]] = [{} for _ in children]
    for k, b in enumerate(batch_sizes):
        base = k * per_batch
        for i, child in enumerate(children):
            times[i][b] = []
            if warmup:
                say(base + (i * warmup if repeat else 0), total,
                    f"batch {b}: warming up {units[i].artifact}")
                child.ask("warmup", batch=b, runs=warmup)
                wait_quiet(child.pids)
        spent, rounds = 0.0, 0
        while (rounds < repeat) if repeat else (rounds < MIN_ROUNDS or spent < seconds * n):
            for i, child in enumerate(children):
                got = child.ask("run", batch=b, runs=RUNS_PER_REQUEST, rewarm=REWARM,
                                rewarm_s=REWARM_SECONDS)["times"]
                wait_quiet(child.pids)  # its idle threads' spinning must not slow the next one
                report.schedule.append((units[i].artifact, units[i].runtime, b))
                times[i][b] += got
                spent += sum(got)
            rounds += 1
            say(base + n * (warmup + rounds * RUNS_PER_REQUEST) if repeat
                else base + min(spent, seconds * n), total, f"batch {b}: round {rounds}")
        for i, child in enumerate(children):
            rss[i][b] = child.ask("rss")["peak_rss_mb"]
    return times, rss


def _row(u: _Unit, loaded: dict, batch: int, seconds: list[float], rss_mb: float,
         macs: float | None, gemm_gflops: float) -> BenchRow:
    from ..precision import judged

    ms = [s * 1e3 for s in seconds]
    p50 = _percentile(ms, 50)
    gflops = 2 * macs * batch / (p50 / 1e3) / 1e9 if macs and p50 > 0 else None
    detail = loaded["detail"] or ""
    notes = list(loaded["notes"])
    if "twin" in detail:  # an ARM build measured through its x86 twin
        detail += " — not phone latency"
    if u.runtime == "lite":
        notes.append("timed inside the Lite worker (the hand-over between processes excluded)")
    stored, computed = loaded["artifact_precision"], loaded["compute_precision"]
    return BenchRow(
        artifact=u.artifact, runtime=loaded["runtime"], precision=judged(stored, computed),
        artifact_precision=stored, compute_precision=computed, detail=detail, batch_size=batch,
        p50_ms=p50, p90_ms=_percentile(ms, 90), p99_ms=_percentile(ms, 99),
        throughput=batch / (p50 / 1e3) if p50 > 0 else float("inf"), load_s=loaded["load_s"],
        peak_rss_mb=rss_mb, gflops=gflops,
        of_gemm=gflops / gemm_gflops if gflops is not None and gemm_gflops > 0 else None,
        model=loaded.get("model") or u.model, samples=len(ms), notes=notes,
        session=loaded.get("settings") or {}, requested_precision=u.precision)
