"""What ``vitdeploy bench`` returns: a row per artifact, runtime and batch size, the report around
them, and the machine they were measured on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..about import machine, versions

LIBRARIES = ("paddlepaddle", "onnxruntime", "openvino", "numpy")  # and vitdeploy: about.versions
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class BenchRow:
    artifact: str
    runtime: str
    precision: str  # the looser of the two below (as parity judges it)
    artifact_precision: str  # what the model file stores
    compute_precision: str  # what the runtime computed in
    detail: str  # e.g. "x86 twin of arm8 — not phone latency"
    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # images/s: batch_size / p50
    load_s: float  # Predictor construction: reading the artifact, building the session
    peak_rss_mb: float  # the artifact's process, up to the end of this batch size's runs
    gflops: float | None  # 2 x model MACs x batch / p50; None for a model the zoo does not know
    of_gemm: float | None  # gflops / the machine's fp32 GEMM rate
    model: str | None = None
    samples: int = 0
    notes: list[str] = field(default_factory=list)
    session: dict = field(default_factory=dict)  # the runtime's session settings (Runtime.settings)
    requested_precision: str | None = None  # what --precision asked of the runtime, if anything


@dataclass
class BenchReport:
    machine: dict
    threads: int
    gemm_gflops: float
    results: list[BenchRow]
    overhead_ms: float  # what timing one run costs by itself (a no-op model), median
    settings: dict
    # (artifact, runtime, batch size) of every measured request, in the order it was made
    schedule: list[tuple[str, str, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["schedule"]
        return data


def machine_info(threads: int) -> dict:
    """The machine's fingerprint (about.machine), the libraries that decide speed, and the thread
    variables every child process gets."""
    return {**machine(), "libraries": versions(LIBRARIES, python=False, missing=True),
            "thread_env": {k: str(threads) for k in THREAD_ENV}}


