"""Bulk inference: stream millions of images to Parquet or JSON lines (issue 19, in progress).

sources.py (what is read, streamed), sink.py (where rows go, resumable), local.py (in-process
engine). The Ray Data engine and the eval aggregation are not written yet."""

from __future__ import annotations

from .local import BulkResult, predict_to_file

__all__ = ["BulkResult", "predict_to_file"]
