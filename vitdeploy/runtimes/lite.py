"""Paddle Lite: runs x86 ``.nb`` files through a persistent worker in the Lite environment.

An ARM (arm8/armv7/opencl) artifact cannot run here; its x86 twin, built by opt from the same
legacy program, stands in for it (reported as such).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ..artifact import NB, NB_TWIN, read_manifest
from ..errors import ArtifactError
from .base import Runtime, stop_worker, worker_pid


def _lite_manifest(directory: Path) -> dict:
    """The manifest's ``lite`` section (arch, x86 twin), read as hints: verification is the
    caller's (Predictor verifies before loading)."""
    lite = read_manifest(directory, strict=False).get("lite")
    return lite if isinstance(lite, dict) else {}


def _arm_hint(arch: str) -> str:
    """What this x86 twin stands in for, and how to run the real ARM kernels instead."""
    from ..lite.arm import ArmToolchainError, abi_for, status

    try:
        abi = abi_for(arch)
    except ArmToolchainError:
        return f"x86 kernels stand in for the {arch} ones"
    if status(abi.name).ready:
        return (f"x86 kernels stand in for the {arch} ones (asked for --runtime lite; "
                "--runtime lite-arm runs the ARM kernels built here)")
    return (f"x86 kernels stand in for the {arch} ones: 'vitdeploy lite setup --arm "
            f"{abi.name}' builds the ARM kernels, which then run by default")


class LiteRuntime(Runtime):
    name = "lite"
    suffixes = (".nb",)
    kind = "lite"  # the artifact kind it runs (artifact.artifact_kind)
    formats = "a Paddle Lite .nb (x86, or an ARM model with its x86 twin)"

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        info = _lite_manifest(directory)
        if info.get("arch", "x86") != "x86":
            twin = directory / (info.get("x86_twin") or NB_TWIN)
            return twin if twin.is_file() else None
        nb = directory / NB
        return nb if nb.is_file() else None

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        """The weights' precision in the .nb; a twin (``model.x86.nb``) speaks for the ARM
        ``model.nb`` beside it, which is the artifact the user ships."""
        from ..lite.naive_buffer import read_nb

        primary = model_path.with_name(NB)
        precision = read_nb(primary if primary.is_file() else model_path).weight_precision()
        return "fp32" if precision == "unknown" else precision

    @classmethod
    def why_not(cls, directory: Path) -> str | None:
        """Why a Lite artifact here cannot run on this machine (an ARM build without x86 twin)."""
        info = _lite_manifest(directory)
        if info.get("arch", "x86") != "x86" and cls.find_model(directory) is None:
            return (f"{directory} holds a {info['arch']} .nb without the x86 twin that runs here; "
                    "reconvert it with this vitdeploy, or check it with 'vitdeploy inspect'")
        return None

    def load(self) -> None:
        from ..lite import env as lite_env
        from ..lite.naive_buffer import read_nb

        nb = read_nb(self.model_path)  # fails clearly on a file that is not a .nb
        if nb.unplaced("x86"):
            raise ArtifactError(f"{self.model_path} is not an x86 .nb, and only x86 runs here")
        info = _lite_manifest(self.model_path.parent)
        # Lite dequantizes weight-only int8/int16 when the model loads: x86 kernels compute in
        # fp32 (the artifact precision, from the ARM model.nb, says what is stored)
        self.compute_precision = "fp16" if any(op.precision == "kFP16" for op in nb.ops) else "fp32"
        self.detail = "x86"
        if info.get("arch", "x86") != "x86":
            self.detail = f"x86 twin of {info['arch']}"
            twin_weights = info.get("x86_twin_weights") or "fp32"
            if twin_weights != "fp32":  # quantized ARM build: the twin rounds weights like it
                self.detail += f", {twin_weights}"
            self.notes.append(_arm_hint(info["arch"]))
        self._tmp = Path(tempfile.mkdtemp(prefix="vitdeploy-lite-"))
        self._proc = subprocess.Popen(lite_env.worker_command("serve"), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                      env=lite_env.worker_env())
        if not self._read().get("ready"):
            raise ArtifactError("the Lite worker did not start")
        self._calls = 0
        self.applied_threads: int | None = None
        self.last_run_s: float | None = None  # the run as timed inside the worker
        self._send({"cmd": "load", "nb": str(self.model_path), "threads": self.threads})
        reply = self._read()  # the predictor is built now: its errors and its time belong to load
        if "error" in reply:
            raise ArtifactError(f"Paddle Lite cannot load {self.model_path.name}: {reply['error']}")

    def _send(self, request: dict) -> None:
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()

    def _read(self) -> dict:
        for line in self._proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise ArtifactError(f"the Lite worker exited (code {self._proc.wait()}) on {self.model_path}")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self._calls += 1
        inp, out = self._tmp / f"in{self._calls}.npy", self._tmp / f"out{self._calls}.npy"
        np.save(inp, np.ascontiguousarray(batch, np.float32))
        self._send({"nb": str(self.model_path), "input": str(inp), "output": str(out),
                    "threads": self.threads})
        reply = self._read()
        if "error" in reply:
            raise ArtifactError(f"Paddle Lite failed on {self.model_path.name}: {reply['error']}")
        self.applied_threads = reply.get("threads")  # what the worker really set (MKL reads back)
        self.last_run_s = reply.get("seconds")
        result = np.load(out)
        inp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        return result

    def timed_predict(self, batch: np.ndarray) -> float:
        """The run as the worker timed it: the .npy hand-over between processes is ours, not
        Lite's (falls back to the wall time around predict with an older worker)."""
        t0 = time.perf_counter()
        self.predict(batch)
        wall = time.perf_counter() - t0
        return self.last_run_s if self.last_run_s is not None else wall

    @property
    def worker_pid(self) -> int | None:
        return worker_pid(self)

    def close(self) -> None:
        stop_worker(getattr(self, "_proc", None), json.dumps({"cmd": "quit"}) + "\n", timeout=10)
        self._proc = None
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
