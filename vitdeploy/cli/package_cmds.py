"""``vitdeploy package``: an export or Lite artifact -> a device bundle (.zip)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .base import AsJson, NoVerify, app, err, handle_errors, out, print_json, say


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@contextmanager
def _progress() -> Iterator[Callable[[str], None] | None]:
    """A rich progress line on stderr, only on a terminal (pipes and CI logs stay clean)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("packaging", total=None)  # total unknown: a pulsing bar
        yield lambda message: bar.update(task, description=message)


def _devices() -> str:
    from ..bundles import DEVICES

    return ", ".join(f"{d.name} ({d.device})" for d in DEVICES.values())


@app.command()
@handle_errors
def package(
    artifact: Path = typer.Argument(..., help="An export directory, or a Paddle Lite artifact "
                                    "built for the target's arch."),
    target: str = typer.Option(..., "--target", "-t", help=f"Device: {_devices()}."),
    out_zip: Path = typer.Option(..., "--out", "-o", help="The bundle to write (.zip)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Self-check images: the first --selfcheck-count of this folder "
        "(default: synthetic images)."),
    selfcheck_count: int = typer.Option(8, "--selfcheck-count",
                                        help="Self-check images to bundle (1..64)."),
    no_verify: NoVerify = False,
    as_json: AsJson = False,
):
    """Bundle a model for a device: .nb, labels, self-check data, C++ demo, build/run scripts."""
    from ..bundles import package as make_bundle

    with _progress() as progress:
        result = make_bundle(artifact, target, out_zip, force=force, images=images,
                             selfcheck_count=selfcheck_count, verify=not no_verify,
                             progress=progress)
    if as_json:
        return print_json(asdict(result))
    stem = Path(result.path).stem
    say(f"{result.model} for {result.target} in {result.path} (.nb arch {result.arch}, Paddle "
        f"Lite {result.opt_version}{' with_extra' if result.with_extra else ''}; see its README.md)",
        lead="[green]packaged[/] ")
    table = Table()
    table.add_column("file")
    table.add_column("size", justify="right")
    for name, size in result.files:
        table.add_row(f"{stem}/{name}", _size(size))
    total = sum(size for _, size in result.files)
    table.add_section()
    table.add_row(f"{len(result.files)} files", _size(total))
    table.add_row("zip", _size(result.size))
    out.print(table)
    tol = result.tolerance
    source = "--images" if result.selfcheck_source == "images" else "synthetic images"
    say(f"self-check: {result.selfcheck_count} images ({source}), reference "
        f"{result.reference['runtime']} {result.reference['precision']}; judged as "
        f"{tol['precision']}: cosine >= {tol['min_cosine']}, top-1 agreement >= "
        f"{tol['min_top1_agreement']}")
    say(f"sha256 {result.sha256}")
    if result.skipped:
        err.print(f"warning: skipped {len(result.skipped)} image(s) the demo could not use "
                  f"(first: {result.skipped[0][1]})", markup=False, highlight=False, soft_wrap=True)
