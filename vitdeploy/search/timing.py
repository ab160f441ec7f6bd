"""Timing the candidates as ``vitdeploy bench`` does: each in a persistent process of its own
(``bench.worker``), loaded one at a time, then one measured run per request, A, B, C, A, B, C...
with untimed re-warm runs before each and the previous process left to go idle.

Invariant: a candidate stops being timed early only when it cannot win — after ``MIN_RUNS``
rounds its median is over ``SLOW_FACTOR`` times the best median among the candidates that meet
the accuracy budget — and its row says so. The baseline is never stopped (every speed-up is
against it). Accuracy was measured before; nothing here touches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..bench.child import Child, wait_quiet
from ..bench.run import REWARM, REWARM_SECONDS, RUNS_PER_REQUEST

MIN_RUNS = 5
SLOW_FACTOR = 2.0

Progress = Callable[[float, float, str], None]  # (done, total, what runs now)


@dataclass
class Timed:
    name: str
    artifact: str
    runtime: str
    precision: str | None  # asked of the runtime
    settings: dict | None
    eligible: bool  # meets the accuracy budget and parity: may win
    keep: bool = False  # never stopped early (the baseline)
    times: list[float] = field(default_factory=list)  # seconds per run
    stopped: str | None = None  # why timing stopped early
    load_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        return float(np.percentile(self.times, q)) * 1e3 if self.times else float("nan")


def _median(t: Timed) -> float:
    return float(np.median(t.times))


def _stop_slow(units: Sequence[Timed], active: list[int], rounds: int) -> None:
    """Drop from ``active`` every unit that cannot win any more (see the module's invariant)."""
    if rounds < MIN_RUNS:
        return
    best = min((_median(units[i]) for i in active if units[i].eligible), default=None)
    if best is None:
        return
    for i in list(active):
        u = units[i]
        if not u.keep and _median(u) > SLOW_FACTOR * best:
            u.stopped = (f"timing stopped after {len(u.times)} runs: {_median(u) / best:.1f}x the "
                         "best eligible median, it cannot win")
            active.remove(i)


def _check_memory(units: Sequence[Timed], batch: int) -> None:
    """Every candidate's process stays alive through the timing: its weights (counted twice, the
    file as read and the runtime's copy) and one batch's activations each, refused in one line
    when that would not fit in the memory available now."""
    from pathlib import Path

    from ..artifact import read_artifact_info
    from ..resources import check_memory, inference_bytes

    size = read_artifact_info(units[0].artifact).preprocess.crop_size
    weights = sum(2 * p.stat().st_size for u in units for p in Path(u.artifact).iterdir()
                  if p.is_file())
    check_memory(weights + len(units) * inference_bytes(batch, size),
                 f"timing {len(units)} candidates side by side at batch size {batch}",
                 "pass a smaller --batch-size, or fewer candidates (--runtime / --precision)")


def time_all(units: list[Timed], batch: int, threads: int, warmup: int, repeat: int,
             early_stop: bool, say: Progress) -> None:
    """Fill each unit's ``times`` (``repeat`` runs, fewer for one stopped early)."""
    if not units:
        return
    _check_memory(units, batch)
    children: list[Child | None] = []
    total = len(units) * (1 + warmup + repeat)
    try:
        for k, u in enumerate(units):
            say(k, total, f"timing: loading {u.name}")
            child = Child(f"{u.artifact} ({u.runtime})", threads)
            children.append(child)
            loaded = child.ask("load", artifact=u.artifact, runtime=u.runtime, threads=threads,
                               precision=u.precision, settings=u.settings)
            child.pids = loaded["pids"]
            u.load_s, u.notes = loaded["load_s"], list(loaded["notes"])
            if warmup:
                child.ask("warmup", batch=batch, runs=warmup)
            wait_quiet(child.pids)
        done = len(units) * (1 + warmup)
        active = list(range(len(units)))
        for rounds in range(1, repeat + 1):
            for i in list(active):
                got = children[i].ask("run", batch=batch, runs=RUNS_PER_REQUEST, rewarm=REWARM,
                                      rewarm_s=REWARM_SECONDS)["times"]
                wait_quiet(children[i].pids)
                units[i].times += got
            done += len(active)
            say(done, total, f"timing: round {rounds}/{repeat} at batch {batch}, "
                             f"{len(active)} candidates")
            if early_stop:
                before = set(active)
                _stop_slow(units, active, rounds)
                for i in before - set(active):
                    children[i].close()
                    children[i] = None
                    done += repeat - rounds  # its remaining runs will not happen
    finally:
        for child in children:
            if child is not None:
                child.close()
