"""What ``vitdeploy optimize`` may try: one table of candidates (a conversion recipe, a runtime
and the precision asked of it), and the plan for this machine and this call.

Invariant: every candidate of the table is either planned or skipped with a reason the user
reads; nothing is dropped silently. The Paddle fp32 baseline is always measured (every Δ and
speed-up is against it), and is a contender only where ``--runtime``/``--precision`` allow it.
Adding a candidate is one line in ``CANDIDATES``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import OptionError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # what --precision filters on
RUNTIMES = ("paddle", "onnxruntime", "openvino", "lite")  # what --runtime filters on
BASELINE = "paddle-fp32"


@dataclass(frozen=True)
class Candidate:
    name: str  # also its folder under --out
    runtime: str
    precision: str  # the family --precision filters on
    target: str | None  # conversion target (None: the source export itself)
    options: dict = field(default_factory=dict)  # the target's typed options (convert.make_options)
    compute: str | None = None  # the precision asked of the runtime (Runtime.precision_choices)
    settings: dict = field(default_factory=dict)  # runtime session settings
    needs_calib: bool = False
    uses_eval: bool = False  # tuned on --eval-data (accuracy control): said in the table
    on_request: bool = False  # only when --runtime names its runtime
    summary: str = ""

    @property
    def folder(self) -> str:
        """The artifact it runs: its own build, or the build of the candidate it shares."""
        return self.options.get("_folder", self.name) if self.target else "export"

    def target_options(self) -> dict:
        return {k: v for k, v in self.options.items() if not k.startswith("_")}


# int8 candidates run the CPU's int8 kernels: that is where int8 speed comes from. Without
# VNNI those saturate, so their accuracy is measured with the same kernels that are timed.
_NATIVE = {"int8": "native"}
CANDIDATES: tuple[Candidate, ...] = (
    Candidate(BASELINE, "paddle", "fp32", None, summary="Paddle Inference fp32 (the baseline)"),
    Candidate("onnxruntime-fp32", "onnxruntime", "fp32", "onnx", {"_folder": "onnx"},
              summary="paddle2onnx + onnxslim"),
    Candidate("onnxruntime-fp16", "onnxruntime", "fp16", "onnx", {"precision": "fp16"},
              summary="fp16 weights and compute"),
    Candidate("onnxruntime-int8", "onnxruntime", "int8", "onnx", {"quantize": "int8"},
              settings=_NATIVE, needs_calib=True, summary="static QDQ, transformer-aware"),
    Candidate("onnxruntime-dynamic-int8", "onnxruntime", "int8", "onnx",
              {"quantize": "dynamic-int8"}, summary="dynamic int8 MatMuls, no calibration"),
    Candidate("openvino-fp32", "openvino", "fp32", "openvino", {"_folder": "openvino"},
              compute="fp32", summary="IR through ONNX"),
    Candidate("openvino-bf16", "openvino", "bf16", "openvino", {"_folder": "openvino"},
              compute="bf16", summary="the fp32 IR computed in bf16"),
    Candidate("openvino-fp16", "openvino", "fp16", "openvino", {"_folder": "openvino"},
              compute="fp16", summary="the fp32 IR computed in fp16"),
    Candidate("openvino-int8", "openvino", "int8", "openvino", {"quantize": "int8"},
              settings=_NATIVE, needs_calib=True, summary="NNCF, transformer model type"),
    Candidate("openvino-int8-ac", "openvino", "int8", "openvino",
              {"quantize": "int8", "_max_drop": True, "_eval": True}, settings=_NATIVE,
              needs_calib=True, uses_eval=True, summary="NNCF with accuracy control"),
    Candidate("lite-fp32", "lite", "fp32", "lite", {"arch": "x86"}, on_request=True,
              summary="Paddle Lite x86 kernels (not a server runtime)"),
)


@dataclass
class Plan:
    planned: list[Candidate]
    skipped: dict[str, str]  # candidate name -> why it is not tried


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@functools.cache
def _reported_capabilities() -> tuple[str, ...]:
    """OpenVINO's CPU plugin, asked once per process (a Core per query costs a plugin load)."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _cpu_computes(precision: str) -> bool:
    """OpenVINO on this CPU computes ``precision`` natively (its CPU plugin's capabilities,
    as the runtime reads them, $VITDEPLOY_CPU_FLAGS honoured)."""
    from ..runtimes.openvino import capabilities

    caps = capabilities(_reported_capabilities())
    return {"bf16": "BF16", "fp16": "FP16"}[precision] in caps


def _why_not(c: Candidate, calib: bool, asked: set[str]) -> str | None:
    """Why this machine or call cannot try ``c``, None when it can."""
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(c.runtime)
    if module and not _installed(module):
        return f"{module} is not installed (pip install {module})"
    if c.runtime == "lite":
        from ..lite.env import status

        if not status().ready:
            return "the Paddle Lite toolchain is not set up (vitdeploy lite setup)"
    if c.needs_calib and not calib:
        return "needs calibration images: pass --calib DIR"
    if c.runtime == "openvino" and c.compute in ("bf16", "fp16") and not _cpu_computes(c.compute):
        return f"this CPU has no native {c.compute} (OpenVINO would compute fp32)"
    if c.name == "onnxruntime-fp16" and "fp16" not in asked:
        return ("ONNX Runtime's x86 CPU kernels have no native fp16 (it would cast around each "
                "op); ask with --precision fp16 to try it anyway")
    return None


def plan(runtimes: Sequence[str] | None, precisions: Sequence[str] | None,
         calib: bool) -> Plan:
    """The candidates this call tries, in table order; the rest with the reason."""
    for r in runtimes or ():
        if r not in RUNTIMES:
            raise OptionError(f"unknown runtime {r!r}; available: {', '.join(RUNTIMES)}")
    for p in precisions or ():
        if p not in PRECISIONS:
            raise OptionError(f"unknown precision {p!r}; available: {', '.join(PRECISIONS)}")
    want_rt, want_p = set(runtimes or ()), set(precisions or ())
    planned: list[Candidate] = []
    skipped: dict[str, str] = {}
    for c in CANDIDATES:
        if want_rt and c.runtime not in want_rt:
            reason = "not among --runtime"
        elif want_p and c.precision not in want_p:
            reason = "not among --precision"
        elif c.on_request and c.runtime not in want_rt:
            reason = f"tried only when asked (--runtime {c.runtime})"
        else:
            reason = _why_not(c, calib, want_p)
        if reason is None:
            planned.append(c)
        else:
            skipped[c.name] = reason
    if not planned:
        asked = " ".join([*(f"--runtime {r}" for r in runtimes or ()),
                          *(f"--precision {p}" for p in precisions or ())])
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items()
                            if not v.startswith("not among"))
        raise OptionError(f"no candidate left to try{' for ' + asked if asked else ''}"
                          + (f" ({reasons})" if reasons else "")
                          + f"; runtimes: {', '.join(RUNTIMES)}; precisions: "
                          f"{', '.join(PRECISIONS)}")
    return Plan(planned, skipped)


def get(name: str) -> Candidate:
    return next(c for c in CANDIDATES if c.name == name)
