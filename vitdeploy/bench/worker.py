"""The child process of ``vitdeploy bench``: one artifact on one runtime, timed on request.

``python -m vitdeploy.bench.worker`` reads one JSON command per line on stdin and answers each with
one JSON line on the stdout it started with (anything a backend prints goes to stderr instead):

    {"cmd": "load", "artifact", "runtime", "threads", "precision"?, "settings"?}
                            -> {"ok", "load_s", "runtime", "detail", "settings", "artifact_precision",
                                "compute_precision", "notes", "input_size", "model"}
    {"cmd": "warmup", "batch": B, "runs": N}            -> {"ok"}               (untimed)
    {"cmd": "run", "batch": B, "runs": K, "rewarm": W, "rewarm_s": S}
                                                        -> {"ok", "times": [seconds, ...]}
                           (untimed runs first, at least W and for at least S s; then K timed)
    {"cmd": "overhead", "runs": N}                      -> {"ok", "times": [...]}  (a no-op model)
    {"cmd": "rss"}                                      -> {"ok", "peak_rss_mb"}
    {"cmd": "gemm", "n": N, "seconds": S}               -> {"ok", "gflops"}   (the machine's rate)
    {"cmd": "macs", "models": [name, ...]}              -> {"ok", "macs": {name: float | null}}
    {"cmd": "quit"}

A failure answers {"error": "one line", "kind": "artifact" | "internal"}. Timing is the Runtime's
own (``Runtime.time_runs``): around ``predict`` only, on an input allocated once per batch size.
The parent sets OMP/MKL/OPENBLAS_NUM_THREADS, so the GEMM probe and the runtimes see one count.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ..runtimes.base import Runtime


class NoOpRuntime(Runtime):
    """A model that does nothing: what timing one run costs by itself (bench's overhead)."""

    name = "no-op"

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        return None

    def load(self) -> None:
        pass

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return batch


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident set of another process (Linux /proc), 0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class Worker:
    def __init__(self) -> None:
        self.predictor = None
        self.inputs: dict[int, np.ndarray] = {}

    def load(self, req: dict) -> dict:
        from ..predictor import Predictor

        t0 = time.perf_counter()
        # the parent has verified the manifest already: hashing it again here is not loading
        self.predictor = Predictor(req["artifact"], runtime=req.get("runtime"),
                                   threads=req["threads"], verify=False,
                                   precision=req.get("precision"),
                                   settings=req.get("settings"))
        load_s = time.perf_counter() - t0
        rt = self.predictor.runtime
        pids = [os.getpid(), *([rt.worker_pid] if getattr(rt, "worker_pid", None) else [])]
        return {"ok": True, "load_s": load_s, "pids": pids, "runtime": rt.name, "detail": rt.detail,
                "settings": rt.settings,
                "artifact_precision": rt.artifact_precision, "compute_precision": rt.compute_precision,
                "notes": list(rt.notes), "input_size": self.predictor.input_size,
                "model": self.predictor.info.manifest.get("model")}

    def _input(self, batch: int) -> np.ndarray:
        if batch not in self.inputs:  # allocated once, outside any timing
            self.inputs.clear()  # bench moves on batch size by batch size: keep only this one
            size = self.predictor.input_size
            rng = np.random.default_rng(batch)  # float32 from the start: no float64 twice its size
            self.inputs[batch] = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        return self.inputs[batch]

    def warmup(self, req: dict) -> dict:
        self.predictor.runtime.warmup(self._input(req["batch"]), runs=req["runs"])
        return {"ok": True}

    def run(self, req: dict) -> dict:
        x = self._input(req["batch"])
        if req.get("rewarm"):  # untimed: wakes the threads (and CPU) that idled while others ran
            self.predictor.runtime.warmup(x, runs=req["rewarm"], seconds=req.get("rewarm_s", 0.0))
        return {"ok": True, "times": self.predictor.runtime.time_runs(x, runs=req["runs"])}

    def overhead(self, req: dict) -> dict:
        noop = NoOpRuntime(Path("no-op"), threads=1)
        x = np.zeros((1, 3, 8, 8), np.float32)
        noop.warmup(x)
        return {"ok": True, "times": noop.time_runs(x, runs=req["runs"])}

    def rss(self, _req: dict) -> dict:
        mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        pid = getattr(self.predictor.runtime, "worker_pid", None) if self.predictor else None
        if pid:  # the model runs in a process of its own (Lite): count its peak too
            mb += _vm_hwm_mb(pid)
        return {"ok": True, "peak_rss_mb": mb}

    @staticmethod
    def gemm(req: dict) -> dict:
        n, budget = int(req.get("n", 1024)), float(req.get("seconds", 0.5))
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), np.float32)
        for _ in range(2):
            np.matmul(a, b, out=c)
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t0)
        return {"ok": True, "gflops": 2 * n ** 3 / float(np.median(times)) / 1e9, "runs": len(times)}

    @staticmethod
    def macs(req: dict) -> dict:
        from ..errors import UnknownModelError
        from ..zoo import count_flops

        found: dict[str, float | None] = {}
        for name in req["models"]:
            try:
                found[name] = count_flops(name)
            except UnknownModelError:
                found[name] = None
        return {"ok": True, "macs": found}

    def close(self) -> None:
        if self.predictor is not None:
            self.predictor.close()
            self.predictor = None


def main() -> int:
    # Protocol on a private copy of stdout; fd 1 goes to stderr, so a backend's prints (oneDNN,
    # Paddle) never land in the middle of a reply.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from ..errors import VitdeployError

    worker = Worker()
    handlers = {"load": worker.load, "warmup": worker.warmup, "run": worker.run,
                "overhead": worker.overhead, "rss": worker.rss, "gemm": worker.gemm,
                "macs": worker.macs}
    try:
        for line in sys.stdin:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            try:
                reply = handlers[req["cmd"]](req)
            except VitdeployError as e:
                reply = {"error": str(e), "kind": "artifact"}
            except Exception as e:  # reported by the parent as an internal error, in one line
                reply = {"error": f"{type(e).__name__}: {e}", "kind": "internal"}
            proto.write(json.dumps(reply) + "\n")
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
