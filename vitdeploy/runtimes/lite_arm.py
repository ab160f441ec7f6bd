"""Paddle Lite on its ARM kernels: an arm8 (or armv7) ``.nb`` run by the ARM runner that
``vitdeploy lite setup --arm`` builds from source, under QEMU user-mode emulation here (natively
on an ARM host). The phone's own kernels, not the x86 twin; emulated time is not phone latency.

The runner is one persistent process per model (its protocol: ``lite/arm_runner.cc``): batches go
in as raw float32, outputs come back with the time ``Run()`` took inside it.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..artifact import NB, read_manifest
from ..errors import ArtifactError
from .base import Runtime, stop_worker, worker_pid

POWER_MODES = (0, 1, 2, 3)  # LITE_POWER_HIGH, LOW, FULL, NO_BIND (paddle_place.h)
DETAIL = "ARM kernels under emulation — not phone latency"


def _arch(directory: Path) -> str | None:
    lite = read_manifest(directory, strict=False).get("lite")
    return lite.get("arch") if isinstance(lite, dict) else None


class LiteArmRuntime(Runtime):
    name = "lite-arm"
    kind = "lite"
    suffixes: ClassVar[tuple[str, ...]] = ()  # the stored precision of a .nb: LiteRuntime reads it
    formats = "an ARM Paddle Lite .nb (arm8 or armv7) with its ARM kernels built here"
    default_settings: ClassVar[dict[str, object]] = {"power_mode": 0}
    setting_choices: ClassVar[dict[str, tuple]] = {"power_mode": POWER_MODES}

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        """The ARM ``model.nb`` when the kernels of its arch are built here (else the x86 twin's
        runtime takes the artifact, and says how to check the real kernels)."""
        from ..lite.arm import ArmToolchainError, abi_for, status

        arch, nb = _arch(directory), directory / NB
        if arch in (None, "x86") or not nb.is_file():
            return None
        try:
            return nb if status(abi_for(arch).name).ready else None
        except ArmToolchainError:
            return None

    @classmethod
    def why_not(cls, directory: Path) -> str | None:
        from ..lite.arm import ArmToolchainError, abi_for, status

        arch = _arch(directory)
        if arch in (None, "x86"):
            return f"{directory} is not an ARM Paddle Lite artifact (arch {arch or 'unknown'})"
        try:
            st = status(abi_for(arch).name)
        except ArmToolchainError as e:
            return str(e)
        return None if st.ready else f"the ARM kernels for {arch} are {st.problem}"

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        from .lite import LiteRuntime

        return LiteRuntime.stored_precision(model_path)

    def load(self) -> None:
        from ..lite.arm import abi_for, runner_command
        from ..lite.naive_buffer import read_nb

        nb = read_nb(self.model_path)  # fails clearly on a file that is not a .nb
        # the .nb's places say ARM, not which ARM: the manifest does (arm8 without one)
        arch = _arch(self.model_path.parent) or "arm8"
        abi = abi_for(arch)
        unplaced = nb.unplaced(arch)
        if unplaced:
            raise ArtifactError(f"{self.model_path} has ops without an {arch} kernel "
                                f"({', '.join(unplaced)}); it is not an {arch} .nb")
        from ..lite.arm import status, tailored_ops

        if status(abi.name).build.get("tailored"):
            beyond = sorted({op.type for op in nb.ops} - tailored_ops())
            if beyond:
                raise ArtifactError(
                    f"{self.model_path.name} uses ops the tailored {abi.name} build has no kernel "
                    f"for ({', '.join(beyond)}); 'vitdeploy lite setup --arm {abi.name} "
                    "--all-kernels' builds every kernel")
        self.compute_precision = "fp16" if any(op.precision == "kFP16" for op in nb.ops) else "fp32"
        self.detail = f"{abi.name} {DETAIL}"
        argv, env = runner_command(abi.name, self.model_path, self.threads,
                                   int(self.settings["power_mode"]))
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._err, env=env)
        self.last_run_s: float | None = None
        if self._read(4) != b"RDY1":
            raise ArtifactError(f"Paddle Lite's {abi.name} kernels cannot load "
                                f"{self.model_path.name}: {self._stderr_tail()}")

    def _read(self, n: int) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(n)
        return data if data is not None else b""

    def _stderr_tail(self) -> str:
        self._proc.wait(timeout=60)
        self._err.seek(0)
        lines = [ln.strip() for ln in self._err.read().decode(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith(("[I", "[W"))]
        last = lines[-1] if lines else f"the runner exited with code {self._proc.returncode}"
        return last.removeprefix("error: ")[:300]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, np.float32)
        if x.ndim != 4:
            raise ArtifactError(f"the ARM runner takes NCHW batches, got shape {list(x.shape)}")
        try:
            self._proc.stdin.write(b"RUN1" + struct.pack("<4i", *x.shape) + x.tobytes())
            self._proc.stdin.flush()
        except OSError:
            raise ArtifactError(f"Paddle Lite's ARM runner stopped on {self.model_path.name}: "
                                f"{self._stderr_tail()}") from None
        head = self._read(20)
        if len(head) != 20 or head[:4] != b"OUT1":
            raise ArtifactError(f"Paddle Lite's ARM kernels failed on a batch of shape "
                                f"{list(x.shape)}: {self._stderr_tail()}")
        rows, cols, ms = struct.unpack("<iid", head[4:])
        out = np.frombuffer(self._read(4 * rows * cols), np.float32)
        if out.size != rows * cols:
            raise ArtifactError(f"the ARM runner's output was cut short: {self._stderr_tail()}")
        self.last_run_s = ms / 1e3
        return out.reshape(rows, cols).copy()

    def timed_predict(self, batch: np.ndarray) -> float:
        """The run as the runner timed it (under emulation): the pipe hand-over is not Lite's."""
        t0 = time.perf_counter()
        self.predict(batch)
        return self.last_run_s if self.last_run_s is not None else time.perf_counter() - t0

    @property
    def worker_pid(self) -> int | None:
        return worker_pid(self)

    def close(self) -> None:
        stop_worker(getattr(self, "_proc", None), b"QUIT", timeout=30)
        self._proc = None
        err = getattr(self, "_err", None)
        if err is not None:
            err.close()
