"""Result files: what ``parity``, ``eval``, ``bench`` and ``optimize`` print with ``--json``, saved with
``--save PATH`` for ``vitdeploy report`` to read back.

A saved file is that JSON object plus two markers, ``vitdeploy_result`` (the kind) and
``vitdeploy_version``; eval's list is saved as ``{"data": ..., "results": [...]}``. The marker is
also what makes a file replaceable: ``--save`` never overwrites a file that does not carry it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..artifact import atomic_file
from ..errors import OutputExistsError, VitdeployError, first_line

KINDS = ("parity", "eval", "bench", "optimize")
MARKER, VERSION = "vitdeploy_result", "vitdeploy_version"
MAX_BYTES = 64 * 2**20  # a result file of any real run is a few KB
_NUM = (int, float, type(None))  # null: a non-finite value (strict JSON has no NaN)

# What the report reads of each kind: top-level keys and, per entry of "results", keys and types.
_TOP = {"parity": {"passed": bool, "reference": dict, "inputs": dict, "batch_sizes": list},
        "eval": {},
        "bench": {"machine": dict, "settings": dict, "threads": int, "gemm_gflops": _NUM},
        "optimize": {"objective": str, "batch_size": int, "threads": int, "max_drop": _NUM,
                     "baseline_top1": _NUM, "machine": dict, "eval_data": dict, "met": bool,
                     "skipped": dict}}
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
    "optimize": {"name": str, "runtime": str, "precision": str, "artifact_precision": str,
                 "compute_precision": str, "status": str, "top1": _NUM, "delta_top1": _NUM,
                 "parity_passed": bool, "p50_ms": _NUM, "p90_ms": _NUM, "throughput": _NUM,
                 "speedup": _NUM, "pareto": bool, "winner": bool, "baseline": bool,
                 "within_budget": bool},
}
# The finite range each number may take (inclusive). A real run never leaves them; a value
# outside is a damaged or hand-made file, refused before anything computes or plots with it.
_FRACTION, _DIFF = (0.0, 1.0), (0.0, 1e39)  # outputs are float32: a difference stays below 1e39
_MS, _RATE = (1e-6, 1e9), (0.0, 1e9)
_RANGE = {
    "parity": {"max_abs": _DIFF, "mean_abs": _DIFF, "batch_max_diff": _DIFF,
               "cosine_min": (-1.001, 1.001), "top1_agreement": _FRACTION,
               "top5_overlap": _FRACTION},
    "eval": {"top1": _FRACTION, "top5": _FRACTION, "n": (0, 10**12), "delta_top1": (-100.0, 100.0)},
    "bench": {"batch_size": (1, 10**6), "p50_ms": _MS, "p90_ms": _MS, "p99_ms": _MS,
              "throughput": _RATE, "load_s": (0.0, 1e6), "peak_rss_mb": (0.0, 1e9),
              "gflops": _RATE, "of_gemm": (0.0, 1e4), "samples": (0, 10**9)},
    "optimize": {"top1": _FRACTION, "delta_top1": (-100.0, 100.0), "p50_ms": _MS, "p90_ms": _MS,
                 "throughput": _RATE, "speedup": (0.0, 1e9), "samples": (0, 10**9)},
}
_TOP_RANGE = {"bench": {"threads": (1, 10**5), "gemm_gflops": _RATE},
              "optimize": {"threads": (1, 10**5), "batch_size": (1, 10**6),
                           "max_drop": (0.0, 100.0), "baseline_top1": _FRACTION}}
# numbers inside the top-level objects that the report shows
_NESTED = {"parity": {"inputs": {"count": (0, 10**12)}},
           "bench": {"settings": {"repeat": (1, 10**9), "warmup": (0, 10**9), "seconds": (0.0, 1e7)},
                     "machine": {"physical_cores": (1, 10**5), "logical_cpus": (1, 10**5)}}}


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


def read_json_bytes(raw: bytes, path: str | Path) -> Any:
    """Parse a result file's bytes. NaN / Infinity / -Infinity (which Python's json writes but
    strict JSON lacks) are read as null, as ``strict_json`` saves them; an integer too long for
    Python (over 4300 digits) or nesting too deep is invalid JSON like any other."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=lambda _name: None)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ResultError(f"{path} is not valid JSON ({first_line(e)[:200]})") from None


def read_bytes(path: Path) -> bytes:
    """A result file's bytes, refused unread above ``MAX_BYTES``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ResultError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ResultError(f"{path} is over {MAX_BYTES >> 20} MiB: not a result --save wrote")
    return raw


def _read_json(path: Path) -> Any:
    return read_json_bytes(read_bytes(path), path)


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
    from ..about import __version__

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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _in_range(holder: dict, key: str, bounds: tuple, where: str, bad: str) -> None:
    """A number within ``bounds``; a non-finite float (a JSON literal like 1e999) becomes null,
    shown as n/a like a NaN; null and absent values are left to the type checks."""
    value = holder.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, bool):
            raise ResultError(f"{bad}: {where} must be a number, got {value!r}")
        return
    if isinstance(value, float) and not math.isfinite(value):
        holder[key] = None
        return
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ResultError(f"{bad}: {where} = {_show(value)} is out of range [{lo:g}, {hi:g}]; "
                          "re-save it with --save")


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
    for key, bounds in _TOP_RANGE.get(kind, {}).items():
        _in_range(obj, key, bounds, key, bad)
    for parent, keys in _NESTED.get(kind, {}).items():
        for key, bounds in keys.items():
            _in_range(obj[parent], key, bounds, f"{parent}.{key}", bad)
    rows = obj.get("results")
    if not isinstance(rows, list) or not rows:
        raise ResultError(f"{bad}: 'results' must be a non-empty list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ResultError(f"{bad}: results[{i}] is not an object")
        for key, bounds in _RANGE[kind].items():
            _in_range(row, key, bounds, f"results[{i}].{key}", bad)
        for key, t in _ROW[kind].items():
            if key not in row or not _check_type(row[key], t):
                raise ResultError(f"{bad}: results[{i}].{key} must be {_type_name(t)}")
    sizes = obj.get("batch_sizes") if kind == "parity" else obj["settings"].get("batch_sizes") \
        if kind == "bench" else [obj["batch_size"]] if kind == "optimize" else [1]
    where = "batch_sizes" if kind == "parity" else "settings.batch_sizes"
    if not isinstance(sizes, list) or not sizes or not all(
            _check_type(b, int) and 1 <= b <= 10**6 for b in sizes):
        raise ResultError(f"{bad}: {where} must be a non-empty list of integers from 1 to 1000000")
    return kind, {k: v for k, v in obj.items() if k not in (MARKER, VERSION)}


def load_result(path: str | Path) -> tuple[str, dict]:
    """Read and validate a file written by ``--save``: ``(kind, data)``."""
    p = Path(path)
    return parse_result(_read_json(p), p)
