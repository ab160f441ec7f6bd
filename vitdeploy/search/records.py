"""What ``vitdeploy optimize`` returns: a row per candidate, the report around them, and the two
judgements made from the rows (the Pareto front, the winner)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

OBJECTIVES = ("latency", "throughput")


@dataclass
class CandidateRow:
    name: str
    runtime: str
    summary: str
    artifact: str  # the folder it ran (under --out, or the source for the baseline)
    precision: str  # judged: the looser of the two below
    artifact_precision: str
    compute_precision: str
    status: str  # "ok", or "failed: <why>" (build or load), never silent
    top1: float | None = None
    top5: float | None = None
    delta_top1: float | None = None  # points against the baseline, same images
    agreement: float | None = None  # top-1 agreement with the baseline over the evaluation images
    parity_passed: bool = False
    parity_failures: list[str] = field(default_factory=list)
    cosine_min: float | None = None
    max_abs: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    throughput: float | None = None  # images/s: batch / mean run time
    speedup: float | None = None  # against the baseline, by the objective
    samples: int = 0
    timing_note: str | None = None  # e.g. stopped early, and why
    within_budget: bool = False  # parity passed and Δ top-1 >= -max_drop
    contender: bool = True  # allowed to win by --runtime/--precision (the baseline may not be)
    pareto: bool = False
    winner: bool = False
    baseline: bool = False
    reused: bool = False  # built by an earlier run with the same inputs
    build_s: float = 0.0
    tuned_on_eval: bool = False  # accuracy control saw the evaluation images: Δ not independent
    settings: dict = field(default_factory=dict)
    requested_precision: str | None = None
    notes: list[str] = field(default_factory=list)

    def cost(self, objective: str) -> float:
        """Lower is better: p50 (latency) or seconds per image (throughput)."""
        if objective == "latency":
            return self.p50_ms if self.p50_ms is not None else math.inf
        return 1.0 / self.throughput if self.throughput else math.inf


@dataclass
class OptimizeReport:
    source: str
    out: str
    objective: str
    batch_size: int
    threads: int
    max_drop: float
    eval_data: dict  # path, images, skipped
    calib: str | None
    baseline_top1: float
    results: list[CandidateRow]
    skipped: dict[str, str]  # candidates not tried, and why
    winner: str | None
    met: bool  # a contender met the budget
    best: str | None  # OUT/best
    command: str | None  # how to run the winner
    machine: dict
    timing: dict  # repeat, warmup, early stop rule
    seconds: float  # the search's own cost, wall clock
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def mark_pareto(rows: list[CandidateRow], objective: str) -> None:
    """On the front: no other row is at least as accurate and at least as fast, and better in one."""
    timed = [r for r in rows if r.top1 is not None and math.isfinite(r.cost(objective))]
    for r in timed:
        r.pareto = not any(
            o is not r and o.top1 >= r.top1 and o.cost(objective) <= r.cost(objective)
            and (o.top1 > r.top1 or o.cost(objective) < r.cost(objective)) for o in timed)


def pick_winner(rows: list[CandidateRow], objective: str) -> CandidateRow | None:
    """The fastest contender within the budget; on a tie, the more accurate, then table order."""
    ok = [r for r in rows if r.contender and r.within_budget
          and math.isfinite(r.cost(objective))]
    if not ok:
        return None
    return min(enumerate(ok), key=lambda t: (t[1].cost(objective), -(t[1].top1 or 0), t[0]))[1]
