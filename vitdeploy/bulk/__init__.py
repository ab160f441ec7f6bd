"""Bulk inference: stream millions of images to Parquet or JSON lines, in this process or on Ray.

sources.py (what is read, streamed), sink.py (where rows go, resumable), local.py (predict to a
file, in-process engine), ray_engine.py (Ray Data: tasks decode, an actor pool predicts),
evaluate.py (eval's top-1 / top-5 on Ray, tallied as in-process)."""

from __future__ import annotations

from .evaluate import evaluate_on_ray
from .local import BulkResult, predict_to_file

__all__ = ["BulkResult", "evaluate_on_ray", "predict_to_file"]
