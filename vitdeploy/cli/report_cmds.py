"""``vitdeploy report``: parse, call ``vitdeploy.report.build_report``, print where it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import AsJson, app, err, handle_errors, out, print_json


@app.command()
@handle_errors
def report(
    run_dir: Path = typer.Argument(
        ..., help="Directory holding artifact directories and results saved with --save "
        "(parity, eval, bench)."),
    out_path: Optional[Path] = typer.Option(
        None, "--out", "-o", help="HTML file to write (default RUN_DIR/report.html); the Markdown "
        "twin goes beside it (.md), with its plots in <stem>_files/."),
    force: bool = typer.Option(False, "--force", help="Replace an existing report."),
    as_json: AsJson = False,
):
    """Write one self-contained HTML report (and a Markdown twin): artifacts, parity, accuracy,
    speed and plots."""
    from ..report import build_report

    result = build_report(run_dir, out_path, force=force)
    for name in result.ignored:
        err.print(f"note: ignored {run_dir / name}: not a vitdeploy result", markup=False,
                  highlight=False, soft_wrap=True)
    if as_json:
        return print_json(result.to_dict())
    out.print(f"wrote {result.html}", markup=False, highlight=False, soft_wrap=True)
    plots = f" (plots in {result.plots_dir})" if result.plots_dir else ""
    out.print(f"  and {result.markdown}{plots}", markup=False, highlight=False, soft_wrap=True)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.results.items() if n)
    out.print(f"  from {result.artifacts} artifact directories and {counts or 'no saved results'}",
              markup=False, highlight=False, soft_wrap=True)
    if result.missing:
        out.print(f"  not run: {', '.join(result.missing)} (each section says how to add it)",
                  markup=False, highlight=False, soft_wrap=True)
