"""What a run directory holds: artifact directories (one level deep, with manifest.json), the
result files ``--save`` wrote, and the optimize.json of an optimize --out folder in it. Read
only; nothing is verified or run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import MANIFEST, read_manifest
from ..check.results import KINDS, ResultError, is_result, parse_result, read_bytes, read_json_bytes
from ..errors import VitdeployError

OPTIMIZE = "optimize.json"  # what 'vitdeploy optimize' writes into its --out folder


class ReportError(VitdeployError):
    """A run directory that cannot be reported on."""


@dataclass
class Artifact:
    name: str  # the directory's name in the run directory
    path: Path
    manifest: dict[str, Any]
    size_bytes: int


@dataclass
class ResultFile:
    name: str  # file name in the run directory
    kind: str
    data: dict[str, Any]
    sha256: str


@dataclass
class Run:
    path: Path
    artifacts: list[Artifact] = field(default_factory=list)
    results: dict[str, list[ResultFile]] = field(default_factory=lambda: {k: [] for k in KINDS})
    ignored: list[str] = field(default_factory=list)  # JSON files that are not results


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _result(path: Path) -> ResultFile | None:
    """A saved result, None for another JSON file; a corrupt one is an error naming it."""
    raw = read_bytes(path)
    try:
        obj = read_json_bytes(raw, path)
    except ResultError as e:
        raise ResultError(f"{e}; re-save it with --save or remove it") from None
    if not is_result(obj):
        return None
    kind, data = parse_result(obj, path)
    return ResultFile(path.name, kind, data, hashlib.sha256(raw).hexdigest())


def collect(run_dir: str | Path) -> Run:
    """Artifact directories (symlinked ones followed) and result files, sorted by name. Hidden
    entries (temp files of a save or a report in progress) are skipped."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ReportError(f"run directory {d} not found (or not a directory)")
    run = Run(d)
    try:
        entries = sorted(d.iterdir(), key=lambda p: p.name)
    except OSError as e:
        raise ReportError(f"cannot list {d}: {e.strerror}") from None
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_dir() and (p / MANIFEST).is_file():
            run.artifacts.append(Artifact(p.name, p, read_manifest(p), _size(p)))
        elif p.is_dir() and (p / OPTIMIZE).is_file():  # an optimize --out folder's own result
            res = _result(p / OPTIMIZE)
            if res is not None and res.kind == "optimize":
                res.name = f"{p.name}/{OPTIMIZE}"
                run.results["optimize"].append(res)
        elif p.is_file() and p.suffix.lower() == ".json":
            res = _result(p)
            if res is None:
                run.ignored.append(p.name)
            else:
                run.results[res.kind].append(res)
    if not run.artifacts and not any(run.results.values()):
        raise ReportError(f"{d} holds no artifact directories (with {MANIFEST}) and no results "
                          "saved with --save; nothing to report")
    return run
