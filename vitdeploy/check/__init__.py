"""Checking deployed models against their reference, apart from the runners (like Polygraphy's
``comparator/``): this package runs artifacts through the ``Predictor`` and compares; it never
knows a runtime.

- ``parity``: outputs against Paddle fp32 (or a reference file), judged per precision
- ``reference``: a portable reference file (``.npz``: inputs, outputs, metadata)
- ``evaluate``: top-1 / top-5 on labelled images
- ``results``: the JSON results ``--save`` writes and ``vitdeploy report`` reads back, validated

Tolerances and the judged precision are ``vitdeploy.precision``'s. (``evaluate.evaluate``, one
predictor on one folder, is not re-exported here: the name is its module's.)"""

from __future__ import annotations

from .evaluate import EvalRow, evaluate_many, labelled_data
from .parity import ParityReport, ParityRow, compare, run_parity
from .reference import Reference, compute_reference, load_reference, save_reference
from .results import load_result, save_result

__all__ = ["EvalRow", "ParityReport", "ParityRow", "Reference", "compare", "compute_reference",
           "evaluate_many", "labelled_data", "load_reference", "load_result",
           "run_parity", "save_reference", "save_result"]
