"""Where bulk predictions go: Parquet (pyarrow, one row group per flush) or JSON lines, written
to a temp file beside the output and moved into place when the run completes.

Invariant: the output file is always a complete run's (or absent); an unfinished run's rows live
in ``.<name>.partial`` beside it — closed properly on Ctrl-C or an error (Parquet footer
written), so ``--resume`` reads them back, skips their images, and carries them into the new
output. A run that fails before writing a new row leaves nothing (no half-written file). Rows
are keyed by (image path, size, mtime): a rewritten image is predicted again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OptionError, OutputExistsError, VitdeployError

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl"}
FLUSH_ROWS = 4096  # rows per Parquet row group / JSONL flush: memory bound of the writer


@dataclass
class Row:
    image: str
    size: int
    mtime_ns: int
    ok: bool
    error: str | None = None
    label: int | None = None  # from a list file
    topk_ids: list[int] = field(default_factory=list)
    topk_labels: list[str] = field(default_factory=list)
    topk_scores: list[float] = field(default_factory=list)
    logits: list[float] | None = None

    def key(self) -> tuple[str, int, int]:
        return self.image, self.size, self.mtime_ns


def output_format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise OptionError(f"--out {out}: unknown format {out.suffix or '(no suffix)'!r}; "
                          "use .parquet or .jsonl")
    return fmt


def partial_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def check_output(out: Path, force: bool, resume: bool) -> str:
    """The format, or one line: an existing output needs --force (start over) or --resume."""
    fmt = output_format(out)
    if out.is_dir():
        raise OutputExistsError(f"--out {out} is a directory; give a file such as {out / 'preds.parquet'}")
    if out.exists() and not (force or resume):
        raise OutputExistsError(f"{out} exists; pass --resume to add what it lacks, or --force to "
                                "start over")
    parent = out.parent if str(out.parent) else Path(".")
    probe = out.with_name(f".{out.name}.writing")
    try:  # a real create, not os.access: root, read-only mounts and /proc answer differently
        if not parent.is_dir():
            raise FileNotFoundError(2, "no such folder")
        probe.touch(exist_ok=True)
        probe.unlink()
    except OSError as e:
        raise OutputExistsError(f"cannot write {out}: {parent} is not a writable folder "
                                f"({e.strerror}); choose another --out") from None
    return fmt


COLUMNS = ("image", "size", "mtime_ns", "ok", "error", "label", "topk_ids", "topk_labels",
           "topk_scores")


def _schema(logits: bool):
    import pyarrow as pa

    cols = [("image", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
            ("ok", pa.bool_()), ("error", pa.string()), ("label", pa.int64()),
            ("topk_ids", pa.list_(pa.int32())), ("topk_labels", pa.list_(pa.string())),
            ("topk_scores", pa.list_(pa.float32()))]
    if logits:
        cols.append(("logits", pa.list_(pa.float32())))
    return pa.schema(cols)


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of an earlier output or partial file; an unreadable one is an error naming it."""
    fmt = output_format(path) if not path.name.endswith(".partial") else \
        output_format(Path(path.name[1:-len(".partial")]))
    try:
        if fmt == "jsonl":
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):  # a torn last line (killed mid-write) is dropped
                        yield Row(**json.loads(line))
            return
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            for rec in batch.to_pylist():
                yield Row(**rec)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise VitdeployError(f"cannot resume from {path}: {e}; pass --force to start over") from None


class Sink:
    """Rows in (one by one, or a batch's columns at once), the output file out (see the
    module's invariant). Held column-wise: Parquet gets whole columns, no per-row dicts."""

    def __init__(self, out: Path, fmt: str, logits: bool) -> None:
        self.out, self.fmt, self.logits = out, fmt, logits
        self.partial = partial_path(out)
        self.tmp = out.with_name(f".{out.name}.writing")
        self.columns = COLUMNS + (("logits",) if logits else ())
        self._cols: dict[str, list] = {c: [] for c in self.columns}
        self._writer = None
        self._file = None
        self.count = 0
        self._marked = 0

    def mark(self) -> None:
        """Rows so far are carried over: an error before any further row keeps no partial."""
        self._marked = self.count

    def __enter__(self) -> Sink:
        if self.fmt == "jsonl":
            self._file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115
        else:
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.tmp, _schema(self.logits))
        return self

    def add(self, row: Row) -> None:
        for c in self.columns:
            self._cols[c].append(getattr(row, c))
        self._added(1)

    def add_columns(self, cols: dict[str, list]) -> None:
        """Equal-length lists, one per column (``logits`` only when the sink stores it)."""
        n = len(cols["image"])
        for c in self.columns:
            self._cols[c].extend(cols[c])
        self._added(n)

    def _added(self, n: int) -> None:
        self.count += n
        if len(self._cols["image"]) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._cols["image"]:
            return
        if self._file is not None:
            names = self.columns
            self._file.writelines(json.dumps(dict(zip(names, values, strict=True))) + "\n"
                                  for values in zip(*(self._cols[c] for c in names), strict=True))
            self._file.flush()
        else:
            import pyarrow as pa

            self._writer.write_table(pa.Table.from_pydict(self._cols, schema=_schema(self.logits)))
        for c in self.columns:
            self._cols[c].clear()

    def __exit__(self, exc_type, *_exc: object) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
        if exc_type is None:
            os.replace(self.tmp, self.out)
            self.partial.unlink(missing_ok=True)
        elif self.count > self._marked:  # what was written so far stays for --resume
            os.replace(self.tmp, self.partial)
        else:  # nothing new: nothing half-written, the earlier files as they were
            self.tmp.unlink(missing_ok=True)
