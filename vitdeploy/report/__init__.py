"""``vitdeploy report``: one self-contained HTML page (and its Markdown twin) from a run
directory: the artifacts' manifests and the results ``parity``, ``eval`` and ``bench`` saved
with ``--save``.

collect.py reads the directory, sections.py and plots.py turn it into a Document (document.py),
render.py writes that as HTML and Markdown, build.py puts the files in place."""

from __future__ import annotations

from .build import ReportResult, build_report
from .collect import ReportError

__all__ = ["ReportError", "ReportResult", "build_report"]
