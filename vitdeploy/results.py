"""Result files: what ``parity``, ``eval`` and ``bench`` print with ``--json``, saved with
``--save PATH`` for ``vitdeploy report`` to read back.

A saved file is that JSON object plus two markers, ``vitdeploy_result`` (the kind) and
``vitdeploy_version``; eval's list is saved as ``{"data": ..., "results": [...]}``. The marker is
also what makes a file replaceable: ``--save`` never overwrites a file that does not carry it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .artifacts import atomic_file
from .errors import OutputExistsError, VitdeployError, first_line

KINDS = ("parity", "eval", "bench")
MARKER, VERSION = "vitdeploy_result", "vitdeploy_version"
_NUM = (int, float, type(None))  # null: a non-finite value (strict JSON has no NaN)

# What the report reads of each kind: top-level keys and, per entry of "results", keys and types.
_TOP = {"parity": {"passed": bool, "reference": dict, "inputs": dict, "batch_sizes": list},
        "eval": {},
        "bench": {"machine": dict, "settings": dict, "threads": int, "gemm_gflops": _NUM}}
_ROW = {
    "parity": {"artifact": str, "runtime": str, "precision": str, "artifact_precision": str,
               "compute_precision": str, "max_abs": _NUM, "mean_abs": _NUM, "cosine_min": _NUM,
               "top1_agreement": _NUM, "top5_overlap": _NUM, "batch_max_diff": _NUM,
               "passed": bool, "failures": list},
    "eval": {"artifact": str, "runtime": str, "artifact_precision": str,
             "compute_precision": str, "top1": _NUM, "top5": _NUM, "n": int, "delta_top1": _NUM},
    "bench": {"artifact": str, "runtime": str, "precision": str, "artifact_precision": str,
              "compute_precision": str, "batch_size": int, "p50_ms": _NUM, "p90_ms": _NUM,
              "p99_ms": _NUM, "throughput": _NUM, "load_s": _NUM, "peak_rss_mb": _NUM,
              "gflops": _NUM, "of_gemm": _NUM},
}


class ResultError(VitdeployError):
    """A result file that cannot be read, or is not what ``--save`` writes."""


def strict_json(data: Any) -> Any:
    """Strict JSON has no NaN/Infinity (json.dumps would write them): they become null; the
    failures that explain them are in the same record."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict_json(v) for v in data]
    return data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path} is not valid JSON ({first_line(e)})") from None


def is_result(obj: Any) -> bool:
    return isinstance(obj, dict) and MARKER in obj


def check_save_path(path: str | Path) -> Path:
    """Refuse a ``--save`` path that would destroy something: a directory, or a file that an
    earlier ``--save`` did not write. Called before the work, so a long run does not end in it."""
    p = Path(path)
    if p.is_dir():
        raise OutputExistsError(f"--save {p} is a directory; give a file path such as {p / 'result.json'}")
    if p.exists() or p.is_symlink():
        try:
            ours = p.is_file() and is_result(_read_json(p))
        except ResultError:
            ours = False
        if not ours:
            raise OutputExistsError(f"{p} exists and is not a vitdeploy result; choose another "
                                    "--save path")
    return p


def save_result(kind: str, data: dict | list, path: str | Path) -> Path:
    """Write ``data`` (what --json printed) with the markers, atomically: a temp file beside
    ``path`` replaces it only once complete. Returns the path."""
    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}")
    p = check_save_path(path)
    body = {"results": data} if isinstance(data, list) else dict(data)
    doc = {MARKER: kind, VERSION: _version(), **strict_json(body)}
    parse_result(json.loads(json.dumps(doc)), p)  # what we write must read back
    with atomic_file(p, text=True, flag="--save path") as f:
        f.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return p


def _version() -> str:
    from . import __version__

    return __version__


def _type_name(t: Any) -> str:
    return "a number or null" if t is _NUM else {bool: "true/false", int: "an integer",
                                                    str: "a string", list: "a list",
                                                    dict: "an object"}[t]


def _check_type(value: Any, t: Any) -> bool:
    if t is _NUM:
        return isinstance(value, _NUM) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def parse_result(obj: Any, path: str | Path) -> tuple[str, dict]:
    """Validate a saved result (already parsed JSON): ``(kind, data)``, data without markers."""
    kind = obj.get(MARKER) if isinstance(obj, dict) else None
    if kind is None:
        raise ResultError(f"{path} is not a vitdeploy result (no {MARKER!r} key); save results "
                          "with --save")
    if kind not in KINDS:
        raise ResultError(f"{path}: unknown {MARKER} {kind!r} (expected {', '.join(KINDS)})")
    bad = f"{path} is not a valid vitdeploy {kind} result"
    for key, t in _TOP[kind].items():
        if key not in obj or not _check_type(obj[key], t):
            raise ResultError(f"{bad}: {key!r} must be {_type_name(t)}")
    rows = obj.get("results")
    if not isinstance(rows, list) or not rows:
        raise ResultError(f"{bad}: 'results' must be a non-empty list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ResultError(f"{bad}: results[{i}] is not an object")
        for key, t in _ROW[kind].items():
            if key not in row or not _check_type(row[key], t):
                raise ResultError(f"{bad}: results[{i}].{key} must be {_type_name(t)}")
    if kind == "bench":
        sizes = obj["settings"].get("batch_sizes")
        if not isinstance(sizes, list) or not sizes or not all(_check_type(b, int) for b in sizes):
            raise ResultError(f"{bad}: settings.batch_sizes must be a list of integers")
    return kind, {k: v for k, v in obj.items() if k not in (MARKER, VERSION)}


def load_result(path: str | Path) -> tuple[str, dict]:
    """Read and validate a file written by ``--save``: ``(kind, data)``."""
    p = Path(path)
    return parse_result(_read_json(p), p)
