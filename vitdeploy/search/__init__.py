"""``vitdeploy optimize``: the fastest artifact for this machine within an accuracy budget.

candidates.py (what may be tried), build.py (building and reusing under --out), measure.py
(accuracy and parity), timing.py (interleaved, one process per candidate), records.py (rows,
Pareto front, winner), run.py (``optimize``, the workflow). ``vitdeploy.optimize`` is
``run.optimize``: a package named ``optimize`` would shadow that function."""

from __future__ import annotations

from .records import CandidateRow, OptimizeReport
from .run import optimize

__all__ = ["CandidateRow", "OptimizeReport", "optimize"]
