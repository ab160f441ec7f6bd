"""Bench's child processes: one persistent ``python -m vitdeploy.bench.worker`` per artifact
(spoken to in JSON lines), the machine's GEMM probe, and the wait for a process to go idle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from ..errors import ArtifactError, VitdeployError
from ..resources import child_env
from .records import THREAD_ENV

GEMM_N, GEMM_SECONDS = 2048, 0.5
SETTLE_LIMIT = 1.0  # seconds a process may take to go idle after a request


def _cpu_ns(pids: Sequence[int]) -> int | None:
    """CPU time so far of every thread of ``pids`` (Linux schedstat, ns); None without /proc."""
    total = 0
    try:
        for pid in pids:
            for task in os.scandir(f"/proc/{pid}/task"):
                with open(f"{task.path}/schedstat") as f:
                    total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def wait_quiet(pids: Sequence[int], window: float = 0.002, busy: float = 0.1,
               limit: float = SETTLE_LIMIT) -> float:
    """Wait until the threads of ``pids`` stop running (an OpenMP pool spins ~200 ms after a run,
    ONNX Runtime's ~30 ms): two ``window``s in a row with under ``busy`` of a core used. Returns
    the seconds waited (at most ``limit``)."""
    start = time.perf_counter()
    before, quiet = _cpu_ns(pids), 0
    while before is not None and quiet < 2 and time.perf_counter() - start < limit:
        time.sleep(window)
        now = _cpu_ns(pids)
        if now is None:
            break
        quiet = quiet + 1 if now - before < busy * window * 1e9 else 0
        before = now
    return time.perf_counter() - start


class Child:
    """One persistent ``bench.worker`` process, spoken to in JSON lines."""

    def __init__(self, label: str, threads: int) -> None:
        self.label = label
        env = child_env(**{k: str(threads) for k in THREAD_ENV})
        self._log = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen([sys.executable, "-m", "vitdeploy.bench.worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, text=True, env=env)
        self.pids = [self._proc.pid]  # + the process the model runs in, when another (Lite)

    def ask(self, cmd: str, **args: object) -> dict:
        try:
            self._proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            code = self._proc.wait()
            self._log.seek(0)
            last = [ln for ln in self._log.read().splitlines() if ln.strip()][-1:]
            raise VitdeployError(f"the bench process for {self.label} exited (code {code})"
                                 + (f": {last[0][:300]}" if last else ""))
        reply = json.loads(line)
        if "error" in reply:
            if reply.get("kind") == "artifact":
                raise ArtifactError(reply["error"])
            raise RuntimeError(f"{self.label}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self._proc.stdin.flush()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def gemm_gflops(threads: int | None = None, n: int | None = None,
                seconds: float | None = None) -> float:
    """This machine's fp32 GEMM rate (numpy n x n matmul, 2n³ FLOPs, median over ~``seconds``),
    measured in a fresh process with OMP/MKL/OPENBLAS_NUM_THREADS set to ``threads``."""
    from ..runtimes import physical_cores

    child = Child("the GEMM probe", threads or physical_cores())
    try:
        return child.ask("gemm", n=n or GEMM_N, seconds=seconds or GEMM_SECONDS)["gflops"]
    finally:
        child.close()


