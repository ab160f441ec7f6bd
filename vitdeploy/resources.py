"""What this machine lets one run use: CPUs for threads, memory for batches.

Invariant: a request beyond the machine (``--threads 10000``, ``--batch-sizes 1000000``) is
refused here, in one line, before any model loads or any process starts — never a hang, an
out-of-memory kill or a swap storm. Ground layer: imports only errors and options.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import VitdeployError
from .options import positive_int

# Of the memory available now, what one run may plan to take: the rest is left to the system
# and to the estimate's own error.
MEMORY_SHARE = 0.8
# A ViT's activations per image, as a multiple of its float32 input: attention maps (heads x
# tokens²) and the MLP's hidden layer dominate. Counted from the 20 zoo architectures, the worst
# (ViT-large/16 at 384) keeps ~23x its input alive in one block; measured on the digits sample at
# batch 2048: ONNX Runtime 7.4x, OpenVINO 5.9x, Paddle Inference 11.6x. 48 leaves room for a
# runtime that holds two blocks' buffers at once.
ACTIVATION_FACTOR = 48


# Run as another machine would look (tests, CI's "other machine" pass): the CPU name reported
# everywhere, and the CPU flags every ISA-dependent choice follows (e.g. no avx512_bf16: OpenVINO
# is not asked for bf16 and says so). Unset: the real CPU.
CPU_NAME_ENV, CPU_FLAGS_ENV = "VITDEPLOY_CPU_NAME", "VITDEPLOY_CPU_FLAGS"


class ResourceError(VitdeployError):
    """A request for more threads or memory than this machine has."""


def _cpuinfo() -> tuple[str | None, set[str]]:
    name, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name, flags


def cpu_name() -> str:
    """The CPU's model name ($VITDEPLOY_CPU_NAME when set)."""
    import platform

    pretend = os.environ.get(CPU_NAME_ENV, "").strip()
    return pretend or _cpuinfo()[0] or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags, as /proc/cpuinfo names them ($VITDEPLOY_CPU_FLAGS when set:
    space- or comma-separated)."""
    pretend = os.environ.get(CPU_FLAGS_ENV)
    if pretend is not None:
        return set(pretend.replace(",", " ").split())
    return _cpuinfo()[1]


def pretended_flags() -> bool:
    return os.environ.get(CPU_FLAGS_ENV) is not None


# An int8 dot product that accumulates in 32 bits. Without one (AVX2, AVX-512 without VNNI) x86
# int8 kernels multiply u8 x s8 pairs into saturating 16-bit sums (vpmaddubsw): measured on the
# digits sample's static int8, cosine to fp32 fell from 0.998 to 0.964 (ONNX Runtime) and from
# 0.984 to 0.884 (OpenVINO).
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def exact_int8_kernels() -> bool:
    """Whether this CPU's int8 kernels compute what the int8 model means (no saturation)."""
    return bool(cpu_flags() & set(INT8_DOT_FLAGS))


def int8_mode(setting: object) -> str:
    """A runtime's ``int8`` setting resolved: "native" (the CPU's int8 kernels) or "emulated"
    (the quantized model's exact arithmetic in fp32). "auto": native where exact."""
    if setting == "auto":
        return "native" if exact_int8_kernels() else "emulated"
    return str(setting)


def int8_note(mode: str, runtime_setting: str = "int8") -> str:
    if mode == "emulated":
        return (f"int8 emulated in fp32 (exact int8 results, no int8 speed-up): this CPU has no "
                f"VNNI, and its int8 kernels saturate; setting {runtime_setting}=native uses them")
    return "int8 kernels without VNNI: 16-bit sums saturate, results differ from exact int8"


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup
    cpuset), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """The default thread count for inference sessions: physical cores, not hyper-threads."""
    try:
        cores = set()
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    cores.add((phys, core))
        if cores:
            return min(len(cores), usable_cpus())
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)


def check_threads(threads: object, flag: str = "--threads") -> int | None:
    """``threads`` if it is a thread count this machine can run, None for the default; else one
    line. More threads than usable CPUs only oversubscribe the cores (and a count in the
    thousands starts that many OS threads per runtime): refused."""
    if threads is None:
        return None
    positive_int(threads, flag)
    cpus = usable_cpus()
    if threads > cpus:
        raise ResourceError(f"{flag} {threads} is more than the {cpus} CPU(s) this process may use; "
                            f"pass at most {cpus} (default: {physical_cores()}, the physical cores)")
    return threads


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """What the cgroup (v2) still lets this process's group allocate, if it is limited."""
    try:
        rel = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text().strip())
    except (OSError, ValueError, IndexError):
        return None


def available_memory() -> int:
    """Bytes that can be allocated now without swapping: MemAvailable, capped by the cgroup's
    limit; from the page counts where /proc is missing."""
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if found:
        return max(0, min(found))
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: nothing refused


def batch_bytes(batch: int, input_size: int) -> int:
    """A float32 NCHW batch of 3-channel ``input_size`` images."""
    return batch * 3 * input_size * input_size * 4


def inference_bytes(batch: int, input_size: int) -> int:
    """Estimated peak for running one batch: its input plus the activations it keeps alive."""
    return batch_bytes(batch, input_size) * (1 + ACTIVATION_FACTOR)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(need: int, what: str, fix: str) -> None:
    """Refuse ``what`` (e.g. "bench at batch 1000000") when its estimated ``need`` exceeds the
    share of available memory one run may take."""
    avail = available_memory()
    if need > MEMORY_SHARE * avail:
        raise ResourceError(f"{what} needs about {gib(need)} of memory; {gib(avail)} is "
                            f"available (a run plans with {MEMORY_SHARE:.0%} of it); {fix}")


def check_batch_memory(batch: int, input_size: int, flag: str = "--batch-size") -> None:
    """One model run on ``batch`` images of ``input_size``: refused when it cannot fit."""
    per_image = inference_bytes(1, input_size)
    fits = int(MEMORY_SHARE * available_memory() // per_image)
    check_memory(inference_bytes(batch, input_size),
                 f"a batch of {batch} images of {input_size}x{input_size} (input and activations)",
                 f"pass a smaller {flag} (at most about {fits} here)" if fits >= 1
                 else "free memory")


def child_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child process that runs this very vitdeploy (``python -m
    vitdeploy....``): this checkout first on PYTHONPATH (not another install), Paddle's C++ log
    quiet, plus ``extra`` variables. The one recipe for bench's workers, the Ray helper and the
    Ray replicas."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("GLOG_minloglevel", "2")
    env.update(extra)
    return env
