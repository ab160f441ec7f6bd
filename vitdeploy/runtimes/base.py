"""The Runtime interface every backend implements (one small module per runtime)."""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import SettingError
from ..precision import check_requested
from ..resources import check_threads, physical_cores

__all__ = ["Runtime", "physical_cores"]


class Runtime(ABC):
    """Load a model file once, then ``predict`` NCHW float32 batches -> [N, classes] float32."""

    name: str = ""
    kind: str = ""  # the artifact kind whose model file it loads by default (artifact.KINDS)
    formats: str = ""  # the model files it reads, for error messages
    suffixes: ClassVar[tuple[str, ...]] = ()  # model files whose stored precision it reads
    compute_precision: str = "fp32"  # what the runtime really computed in (set by load)
    precision_choices: tuple[str, ...] = ()  # compute precisions a caller may ask for
    detail: str = ""  # e.g. which device variant really ran (Lite: the x86 twin)
    # Session settings: the measured defaults (docs/benchmarks.md) and what a caller may choose
    # instead (benchmarks/session_settings.py compares them); keys a runtime lacks are errors.
    default_settings: ClassVar[dict[str, object]] = {}
    setting_choices: ClassVar[dict[str, tuple]] = {}

    def __init__(self, model_path: Path, threads: int | None = None,
                 precision: str | None = None,
                 settings: Mapping[str, object] | None = None) -> None:
        self.model_path = Path(model_path)
        self.threads = check_threads(threads) or physical_cores()
        self.settings = self.check_settings(settings or {})
        check_requested(self.name, precision, self.precision_choices)
        self.requested_precision = precision
        self.notes: list[str] = []  # e.g. "this CPU has no bf16; computed in fp32"

    @classmethod
    def check_settings(cls, overrides: Mapping[str, object]) -> dict[str, object]:
        """The defaults with ``overrides`` applied; an unknown key or value is an error."""
        for key, value in overrides.items():
            if key not in cls.setting_choices:
                known = ", ".join(cls.setting_choices) or "none"
                raise SettingError(
                    f"runtime {cls.name!r} has no setting {key!r}; its settings: {known}")
            choices = cls.setting_choices[key]
            if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
                raise SettingError(
                    f"setting {key}={value!r} for runtime {cls.name!r}: choose one of "
                    f"{', '.join(map(str, choices))}")
        return {**cls.default_settings, **overrides}

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        """What a model file of this runtime's format stores, read from its graph (overridden
        by each runtime for its format; ``runtimes.stored_precision`` picks by suffix)."""
        return "fp32"

    @classmethod
    def batch_dependent(cls, model_path: Path) -> bool:
        """Whether one input's output depends on the rows batched with it (dynamic int8)."""
        return False

    @functools.cached_property
    def artifact_precision(self) -> str:
        """What the model file stores (``stored_precision``)."""
        return self.stored_precision(self.model_path)

    @classmethod
    @abstractmethod
    def find_model(cls, directory: Path) -> Path | None:
        """The model file this runtime would load from an artifact directory, if any."""

    @classmethod
    def why_not(cls, directory: Path) -> str | None:
        """Why this runtime's kind of artifact in ``directory`` cannot run here, if it is one."""
        return None

    @abstractmethod
    def load(self) -> None:
        """Import the backend and build the session (heavy imports live here)."""

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        ...

    def close(self) -> None:  # noqa: B027  (optional hook: most sessions free themselves)
        """Release the session."""

    # Timing, shared by bench (and later serve): around ``predict`` only, on a batch the caller
    # prepared (preprocessing excluded).
    def warmup(self, batch: np.ndarray, runs: int = 3, seconds: float = 0.0) -> None:
        """Untimed runs (first-call kernel selection, allocator, caches, sleeping threads): at
        least ``runs``, and on until ``seconds`` have passed."""
        start = time.perf_counter()
        done = 0
        while done < runs or time.perf_counter() - start < seconds:
            self.predict(batch)
            done += 1

    def timed_predict(self, batch: np.ndarray) -> float:
        """Seconds one ``predict`` of ``batch`` takes. A runtime whose model runs in another
        process (Lite) overrides this with the time measured there, without the hand-over."""
        t0 = time.perf_counter()
        self.predict(batch)
        return time.perf_counter() - t0

    def time_runs(self, batch: np.ndarray, runs: int = 1) -> list[float]:
        """Seconds per run, ``runs`` runs back to back."""
        return [self.timed_predict(batch) for _ in range(runs)]

    def __enter__(self) -> Runtime:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stop_worker(proc, quit_message: bytes | str, timeout: float) -> None:
    """Ask a runtime's worker process to quit; kill it when it does not within ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    import subprocess

    try:
        proc.stdin.write(quit_message)
        proc.stdin.flush()
        proc.wait(timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


def worker_pid(runtime: object) -> int | None:
    """The process a runtime's model runs in, if any (bench adds its peak RSS to its own)."""
    proc = getattr(runtime, "_proc", None)
    return proc.pid if proc is not None else None
