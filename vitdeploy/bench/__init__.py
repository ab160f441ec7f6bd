"""``vitdeploy bench``: latency, throughput, load time and memory per artifact, runtime and batch
size, each artifact in a process of its own, interleaved (see run.py).

- ``run``: ``bench()``, validation, the interleaved measurement
- ``child``: the persistent child processes, the GEMM probe, waiting for a process to go idle
- ``worker``: what runs in each child (``python -m vitdeploy.bench.worker``)
- ``records``: ``BenchRow``, ``BenchReport``, the machine's fingerprint

``from vitdeploy.bench import bench; bench([...])``."""

from __future__ import annotations

from .child import Child, gemm_gflops, wait_quiet
from .records import BenchReport, BenchRow, machine_info
from .run import MIN_ROUNDS, REWARM, REWARM_SECONDS, bench, check_bench_memory, validate

__all__ = ["MIN_ROUNDS", "REWARM", "REWARM_SECONDS", "BenchReport", "BenchRow", "Child", "bench",
           "check_bench_memory", "gemm_gflops", "machine_info", "validate", "wait_quiet"]
