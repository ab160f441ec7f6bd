"""The ``vitdeploy`` command line: parse, call one library function, render.

base.py holds the app, its one-line error handling and the shared options; artifact_cmds.py
(models, export, convert, inspect, doctor, lite setup), run_cmds.py (predict, parity, eval),
bench_cmds.py (bench), optimize_cmds.py (optimize), report_cmds.py (report), package_cmds.py
(package) and serve_cmds.py (serve) the commands."""

from __future__ import annotations

from . import (  # noqa: F401  (importing them registers the commands)
    artifact_cmds,
    bench_cmds,
    optimize_cmds,
    package_cmds,
    report_cmds,
    run_cmds,
    serve_cmds,
)
from .base import app


def run() -> None:
    app()


__all__ = ["app", "run"]
