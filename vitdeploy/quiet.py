"""Keep native libraries' stray prints off stdout (--json output) and stderr (our one error line)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# fd 2 is one per process: two threads swapping it at once would restore each other's temp file
# (the server decodes images in several threads), so the swaps take turns.
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Redirect file descriptor 1 itself (C++ prints too) and Python's sys.stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)


class Captured:
    """What a ``quiet_stderr()`` block wrote to fd 2; ``text`` is filled in when the block ends."""

    text: str = ""


@contextlib.contextmanager
def quiet_stderr(keep: int = 16384) -> Iterator[Captured]:
    """Redirect file descriptor 2 itself (OpenCV's ``[ WARN]`` and libpng's ``fprintf``) into a
    temporary file, not a pipe, which a chatty library could fill and block on.

    Process-wide, like ``quiet_stdout``: another thread's stderr is captured meanwhile too.
    The first ``keep`` bytes end up in ``Captured.text`` so a caller can quote the native message.
    """
    captured = Captured()
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read(keep).decode(errors="replace")


@contextlib.contextmanager
def terminal_only_for_us() -> Iterator[None]:
    """For a chatty framework running inside this process (Ray's driver): its C++ log lines
    (fd 2), its prints (``sys.stdout``, which is our ``--json``) and its Python log handlers
    (bound to the old ``sys.stderr``) go to a temporary file, dropped at the end; our own
    ``sys.stderr`` (progress bars, the one error line) still reaches the terminal."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink, \
            open(os.devnull, "w") as devnull:  # noqa: PTH123
        sys.stderr.flush()
        saved = os.dup(2)
        ours = open(saved, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                    errors="replace")
        old_err, old_out = sys.stderr, sys.stdout
        os.dup2(sink.fileno(), 2)
        sys.stderr, sys.stdout = ours, devnull
        try:
            yield
        finally:
            ours.flush()
            sys.stderr, sys.stdout = old_err, old_out
            os.dup2(saved, 2)
            os.close(saved)
            ours.close()
