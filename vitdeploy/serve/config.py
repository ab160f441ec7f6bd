"""What ``vitdeploy serve`` is asked for, checked at the boundary before anything starts.

Plain dataclasses, no heavy imports: a Ray Serve replica receives them pickled and loads the models
itself."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError
from ..options import positive_int
from ..resources import check_threads

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # safe in a URL path segment
DEFAULT_MAX_REQUEST_MB = 64.0
MAX_BATCH = 4096
MAX_DELAY_MS = 60_000.0
MAX_TIMEOUT_S = 3600.0
MAX_CONNECTIONS = 65_536


@dataclass(frozen=True)
class ModelSpec:
    """One artifact to serve, under ``name``."""

    name: str
    directory: str
    runtime: str | None = None
    precision: str | None = None
    threads: int | None = None
    model: str | None = None  # architecture of a bare PaddleClas export (its preprocessing)
    verify: bool = True


@dataclass(frozen=True)
class ServeOptions:
    max_batch_size: int = 8
    max_queue_delay_ms: float = 2.0
    max_request_bytes: int = int(DEFAULT_MAX_REQUEST_MB * 2**20)
    max_image_pixels: int | None = None
    graceful_timeout_s: float = 30.0
    # connections (docs/serving.md, "Limits"): a request's headers must arrive within
    # header_timeout_s of the connection waiting for them (also the keep-alive idle time), its
    # body may pause at most body_timeout_s between reads (408), and past max_connections open
    # connections a new request is answered 503
    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections: int = 512


def check_port(port: int) -> int:
    return positive_int(port, "--port", 0, 65535, " (0: any free port)")


def _seconds(value: float, flag: str) -> float:
    v = float(value)
    if not math.isfinite(v) or not 0 < v <= MAX_TIMEOUT_S:
        raise OptionError(f"{flag} {value} is out of range; use seconds in (0, {MAX_TIMEOUT_S:g}]")
    return v


def serve_options(max_batch_size: int = 8, max_queue_delay_ms: float = 2.0,
                  max_request_mb: float = DEFAULT_MAX_REQUEST_MB,
                  max_image_pixels: int | None = None, header_timeout_s: float = 15.0,
                  body_timeout_s: float = 30.0, max_connections: int = 512) -> ServeOptions:
    """The batching and limit options, each in range, or one line naming the one that is not."""
    positive_int(max_batch_size, "--max-batch-size", 1, MAX_BATCH, " (1: no dynamic batching)")
    delay = float(max_queue_delay_ms)
    if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_MS:
        raise OptionError(f"--max-queue-delay-ms {max_queue_delay_ms} is out of range; use a "
                          f"finite number of milliseconds in 0..{MAX_DELAY_MS:g}")
    mb = float(max_request_mb)
    if not math.isfinite(mb) or not 0 < mb <= 4096:
        raise OptionError(f"--max-request-mb {max_request_mb} is out of range; use a number in "
                          "(0, 4096]")
    if max_image_pixels is not None:
        positive_int(max_image_pixels, "--max-image-pixels")
    positive_int(max_connections, "--max-connections", 1, MAX_CONNECTIONS)
    return ServeOptions(max_batch_size, delay, int(mb * 2**20), max_image_pixels,
                        header_timeout_s=_seconds(header_timeout_s, "--header-timeout"),
                        body_timeout_s=_seconds(body_timeout_s, "--body-timeout"),
                        max_connections=max_connections)


def model_specs(artifacts: list[str | Path], *, runtime: str | None = None,
                precision: str | None = None, threads: int | None = None,
                model: str | None = None, verify: bool = True) -> list[ModelSpec]:
    """``DIR`` or ``NAME=DIR`` per artifact; a DIR is served under its folder's name. Names must be
    unique and URL-safe."""
    if not artifacts:
        raise OptionError("no artifact to serve; pass one or more artifact directories")
    check_threads(threads)
    specs: list[ModelSpec] = []
    seen: dict[str, str] = {}
    for raw in map(str, artifacts):
        name, sep, path = raw.partition("=")
        if not sep or not MODEL_NAME.match(name):  # a path that holds "=" stays a path
            name, path = "", raw
        directory = Path(path).expanduser().absolute()
        name = name or directory.name
        if not MODEL_NAME.match(name):
            raise OptionError(f"cannot serve {raw} under the name {name!r}: a model name is letters, "
                              "digits, '_', '.', '-'; name it: NAME=DIR")
        if name in seen:
            raise OptionError(f"two artifacts would be served as {name!r} ({seen[name]} and {path}); "
                              "name them: NAME=DIR")
        seen[name] = path
        specs.append(ModelSpec(name, str(directory), runtime, precision, threads, model, verify))
    return specs
