"""Building the candidates into ``--out``, and finding what an earlier run already built.

Invariant: a folder under OUT is reused only when its state record (``OUT/.optimize/<folder>.json``,
written after the folder is complete) holds the same key — the source's files, the target's
options, the calibration and evaluation images (listed with sizes and mtimes), vitdeploy's and
the tools' versions — and the folder still verifies against its manifest. Every folder is written
by ``convert``/``export`` through a temp folder, so an interrupted run leaves only complete
folders: a rerun resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..about import __version__
from ..artifact import MANIFEST, sha256, verify_artifact, within
from ..errors import ArtifactError, OptionError, OutputExistsError, VitdeployError
from .candidates import Candidate

STATE = ".optimize"  # under --out: one record per built folder and per measured candidate
MAX_LISTED = 200_000  # files fingerprinted per folder (calibration / evaluation data)


def fingerprint(path: Path | None) -> str | None:
    """Names, sizes and mtimes of a file or every file below a folder: cheap, and changes when
    an image is added, removed or rewritten."""
    if path is None:
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if len(files) > MAX_LISTED:
        raise OptionError(f"{path} holds more than {MAX_LISTED} files; pass a smaller folder or a "
                          "list file")
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(path) if p != path else p.name}\0{st.st_size}\0"
                 f"{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_out(out: Path, src: Path, force: bool) -> None:
    """--out may be new, empty or an earlier optimize output; never SRC, inside it or around it."""
    o, s = out.absolute(), src.absolute()
    if within(o.resolve(), s.resolve()) or within(o, s):
        raise OutputExistsError(f"--out {out} is inside the source {src}; choose a folder outside it")
    if within(s.resolve(), o.resolve()):
        raise OutputExistsError(f"--out {out} holds the source {src}; replacing what it holds "
                                "could destroy that input, so choose another --out")
    if o.exists() and not o.is_dir():
        raise OutputExistsError(f"--out {out} is a file, not a directory; choose another --out")
    if o.is_dir() and any(o.iterdir()) and not (o / STATE).is_dir() and not force:
        raise OutputExistsError(f"--out {out} is not empty and is not an earlier optimize output; "
                                "choose another --out (or --force to build into it)")


def read_state(out: Path, name: str) -> dict:
    p = out / STATE / f"{name}.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(out: Path, name: str, data: dict) -> None:
    d = out / STATE
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=d)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600
    os.replace(tmp, d / f"{name}.json")


def _reusable(folder: Path, key: str, state: dict) -> bool:
    if state.get("key") != key or not (folder / MANIFEST).is_file():
        return False
    try:
        verify_artifact(folder)
    except ArtifactError:
        return False
    return True


def build_key(src_files: dict[str, str], target: str, options: dict, calib: str | None,
              evals: str | None) -> str:
    from ..convert import tool_versions

    return digest({"source": src_files, "target": target, "options": options, "calib": calib,
                   "eval": evals, "vitdeploy": __version__, "tools": tool_versions()})


def source_files(src: Path) -> dict[str, str]:
    """The source's model and weights, by content (what a conversion reads)."""
    from ..convert.source import resolve_source

    s = resolve_source(src, None, None, verify=False)
    return {p.name: sha256(p) for p in (s.model_file, s.params_file) if p.is_file()}


def build(c: Candidate, src: Path, out: Path, calib: Path | None, eval_data: Path | None,
          max_drop: float, fingerprints: dict, say: Callable[[str], None]
          ) -> tuple[Path, bool, float]:
    """(folder, reused, seconds building) of candidate ``c``; its build shared by candidates
    with the same folder (OpenVINO's fp32 IR serves fp32, bf16 and fp16)."""
    from ..convert import convert, make_options

    folder = out / c.folder
    opts = c.target_options()
    if c.needs_calib:
        opts["calib"] = calib
    if c.options.get("_max_drop"):
        opts.update(max_drop=max_drop, eval_data=eval_data)
    typed = make_options(str(c.target), opts)
    key = build_key(fingerprints["source"], str(c.target), typed.to_dict(),
                    fingerprints["calib"] if c.needs_calib else None,
                    fingerprints["eval"] if c.uses_eval else None)
    state = read_state(out, c.folder)
    if _reusable(folder, key, state):
        return folder, True, float(state.get("seconds", 0.0))
    start = time.perf_counter()
    convert(src, str(c.target), folder, typed, force=True, progress=say)
    seconds = time.perf_counter() - start
    write_state(out, c.folder, {"key": key, "seconds": seconds, "candidate": c.name})
    return folder, False, seconds


def export_checkpoint(model: str, weights: Path, labels: Path | None, out: Path,
                      say: Callable[[str], None]) -> tuple[Path, bool, float]:
    """A checkpoint given as SRC: exported once into OUT/export (reused like the others)."""
    from ..export import export_model

    folder = out / "export"
    key = digest({"model": model, "weights": sha256(weights),
                  "labels": sha256(labels) if labels else None, "vitdeploy": __version__})
    state = read_state(out, "export")
    if _reusable(folder, key, state):
        return folder, True, float(state.get("seconds", 0.0))
    start = time.perf_counter()
    export_model(model, weights, folder, labels=labels, force=True, progress=say)
    seconds = time.perf_counter() - start
    write_state(out, "export", {"key": key, "seconds": seconds, "candidate": "export"})
    return folder, False, seconds


def copy_best(folder: Path, out: Path) -> Path:
    """OUT/best: a copy of the winner's folder (a user may move it; a link would break), put
    in place whole, replacing only an earlier ``best``."""
    best = out / "best"
    tmp = Path(tempfile.mkdtemp(prefix=".best.tmp-", dir=out))
    try:
        shutil.copytree(folder, tmp / "best", symlinks=False)
        if best.is_symlink() or best.is_file():
            best.unlink()
        elif best.exists():
            best.rename(tmp / "old")
        (tmp / "best").rename(best)
    except OSError as e:
        raise VitdeployError(f"cannot write {best}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return best


@contextlib.contextmanager
def started(out: Path) -> Iterator[None]:
    """Mark ``out`` as an optimize output; if the block fails and ``out`` was new, nothing of it
    stays (a bad evaluation folder found while reading it leaves no empty output behind)."""
    new = not out.exists()
    (out / STATE).mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if new:
            shutil.rmtree(out, ignore_errors=True)
        raise


def drop_best(out: Path) -> None:
    best = out / "best"
    if best.is_symlink() or best.is_file():
        best.unlink()
    elif best.is_dir():
        shutil.rmtree(best)
