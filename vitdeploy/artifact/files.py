"""Writing artifacts and results safely: sha256 of a file, output directories checked before
long work, and atomic writes (a temp file or folder beside the output, moved into place only when
complete: nothing half-written, whatever happens)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..errors import OutputExistsError, VitdeployError


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_output_dir(out: str | Path, force: bool = False,
                     inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output that is a file, a non-empty directory without --force, or one that is
    (or holds) an input: replacing it would destroy what we read. Call this before long work,
    so the user hears it at once."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} is a file, not a directory; choose another --out")
    real_out = out.resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).absolute()
        if within(src.resolve(), real_out) or within(src, out):
            raise OutputExistsError(f"--out {out} holds the input {given}; replacing it would "
                                    "destroy that input, so choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output directory {out} is not empty; pass --force to replace it")
    return out


@contextlib.contextmanager
def atomic_file(out: Path, *, text: bool = False, force: bool = True,
                flag: str = "--out") -> Iterator[IO]:
    """A temp file beside ``out``, fsynced and moved onto it (os.replace) only when the block
    succeeds; on any failure (KeyboardInterrupt included) it vanishes: nothing half-written.
    ``force=False`` refuses an ``out`` that appeared while the block ran."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    except OSError as e:
        raise VitdeployError(f"cannot write to {out.parent}: {e.strerror}; choose another {flag}") \
            from None
    try:
        with os.fdopen(fd, "w" if text else "w+b", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        if out.exists() and not force:
            raise OutputExistsError(f"{out} exists; pass --force to replace it")
        os.replace(tmp, out)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise VitdeployError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, force: bool = False,
                      inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Yield a temp dir beside ``out``; on success it replaces ``out``, on any failure it vanishes."""
    out = check_output_dir(out, force, inputs)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise VitdeployError(f"cannot write to {parent}: {e.strerror}; choose a writable --out") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            out.rename(trash / "old")
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:  # includes KeyboardInterrupt: leave nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise


