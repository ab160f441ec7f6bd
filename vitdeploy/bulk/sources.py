"""What bulk inference reads: folders (recursive), image files, PaddleClas list files and text
files of paths, streamed one entry at a time.

Invariant: memory does not grow with the number of images. Folders are walked with
``os.scandir`` one directory at a time, entries sorted within a directory (so the order, and a
resumed run's order, is the same every time); list files are read line by line. Nothing here
opens an image: a path that is not a regular file is yielded and fails where it is decoded, as a
failed row with its reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from ..preprocess import IMAGE_SUFFIXES

MAX_LINE = 64 * 1024  # a list-file line longer than this is not a path


@dataclass(frozen=True)
class Entry:
    path: str
    label: int | None = None  # from a PaddleClas list file ("path label")


def _walk(root: Path) -> Iterator[Entry]:
    """Depth first, sorted by name within each directory; symlinked directories are not
    followed (a link cycle cannot loop), symlinked files are."""
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise ImageError(f"cannot list {d}: {e.strerror}") from None
        dirs = []
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                dirs.append(Path(e.path))
            elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES:
                yield Entry(e.path)
        stack.extend(reversed(dirs))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115  (closed by the with below)
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror}") from None
    with f:
        for n, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE:
                raise ImageError(f"{path}:{n}: a line of {len(raw)} characters is not an image path")
            line = raw.strip()
            if line and not line.startswith("#"):
                yield n, line


def _list_file(path: Path) -> Iterator[Entry]:
    """``path label`` (PaddleClas) or one path per line; relative paths are relative to the
    list file's folder. A line's last field is a label only when it is an integer."""
    base = path.parent
    try:
        for _, line in _lines(path):
            parts = line.rsplit(None, 1)
            label = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None
            name = parts[0] if label is not None else line
            p = Path(name)
            yield Entry(str(p if p.is_absolute() else base / p), label)
    except UnicodeDecodeError:
        raise ImageError(f"{path} is neither an image nor a text list of image paths") from None


def iter_entries(data: Sequence[str | Path]) -> Iterator[Entry]:
    """Every image entry of ``data``, in order, streamed."""
    for raw in data:
        p = Path(raw)
        if p.is_dir():
            yield from _walk(p)
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield Entry(str(p))
        elif p.is_file():
            yield from _list_file(p)
        else:
            raise ImageError(f"{p} not found (expected image folders, image files, PaddleClas list "
                             "files or text files of paths)")


def stat_key(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of an image, the key of a done row with its path; (-1, -1) when it
    cannot be stat'ed (its row then fails where it is decoded)."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


def check_sources(data: Sequence[str | Path]) -> None:
    """Every DATA argument exists, before any output is opened."""
    if not data:
        raise ImageError("name at least one image folder, image file or list file")
    for raw in data:
        if not Path(raw).exists():
            raise ImageError(f"{raw} not found (expected image folders, image files, PaddleClas "
                             "list files or text files of paths)")


def check_not_an_input(out: Path, data: Sequence[str | Path]) -> None:
    """``--out`` is none of the DATA arguments: ``--force`` or ``--resume`` never replaces an
    input (a text file of paths named like an output)."""
    if not out.exists():
        return
    for raw in data:
        if Path(raw).exists() and os.path.samefile(raw, out):
            raise ImageError(f"--out {out} is one of the inputs (DATA); write the predictions to "
                             "another file")
