"""What a conversion target is: a typed options dataclass, the function that converts, and what
it adds to the manifest. Each target module (onnx.py, openvino.py, lite.py) declares one
``TARGET``; ``convert/__init__.py`` lists them in ``TARGETS`` (one line per target)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..options import TargetOptions
from .source import Source

Progress = Callable[[str], None]


def no_section(_details: dict) -> dict:
    return {}


@dataclass(frozen=True)
class Target:
    name: str  # what --to takes
    summary: str  # one line, for --help
    options: type[TargetOptions]
    convert: Callable[[Source, Path, TargetOptions, Progress], dict]  # -> details, "model_file"
    manifest_section: Callable[[dict], dict] = no_section  # extra top-level manifest keys
