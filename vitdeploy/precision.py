"""One meaning of precision.

* artifact (stored) precision: what the model file stores, read from the graph itself by the
  runtime of its format (``Runtime.stored_precision``: QDQ / integer ops in ONNX, FakeQuantize or
  compressed constants in OpenVINO IR, fp16 initializers, Lite's weight-quantization attributes;
  ``runtimes.stored_precision`` picks the reader); a manifest only records it;
* compute precision: what the runtime really computed in (each Runtime reports it after load).

A result is judged as the looser of the two (``judged``), with that precision's tolerance preset
(``PRESETS``, ``tolerance_for``): parity, eval, bench, bundles' self-checks all ask here.
``check_requested`` is the one check of a precision asked of a runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .errors import OptionError, PrecisionError

# Tightest to loosest tolerance: the order ``looser`` picks by.
ORDER = ("fp32", "int16", "fp16", "bf16", "int8")



def looser(*precisions: str) -> str:
    known = [p for p in precisions if p in ORDER]
    return max(known, key=ORDER.index) if known else "fp32"


def judged(artifact_precision: str, compute_precision: str, *others: str) -> str:
    """The precision a result is judged as: the looser of what the model file stores and what
    the runtime computed in (an int8 model computed in fp32 is still int8's error), and of any
    ``others`` involved (a bundle's reference)."""
    return looser(artifact_precision, compute_precision, *others)


def check_requested(runtime: str, precision: str | None, choices: tuple[str, ...]) -> None:
    """A compute precision asked of ``runtime``: one of its ``choices``, else one line naming
    them (the one check, used by runtimes, serve and bench alike)."""
    if precision is not None and precision not in choices:
        offered = ", ".join(choices) or "none: it runs the model file as it is"
        raise PrecisionError(f"runtime {runtime!r} cannot be asked for precision {precision!r} "
                             f"(choices: {offered})")


@dataclass(frozen=True)
class Tolerance:
    min_cosine: float
    min_top1_agreement: float
    max_abs: float | None = None  # optional absolute bound on any logit
    max_batch_diff: float | None = 1e-4  # same input, different batch size (None: not judged)


# Presets by the precision a runtime really computed in (overridable from the CLI).
PRESETS = {
    "fp32": Tolerance(0.99999, 1.0, None, 1e-4),
    "fp16": Tolerance(0.999, 0.98, None, 1e-2),
    "bf16": Tolerance(0.995, 0.95, None, 5e-2),
    "int8": Tolerance(0.98, 0.90, None, 5e-2),
    "int16": Tolerance(0.9999, 0.99, None, 1e-3),
}


# Each override's name -> (low, high): validated before anything runs, since a NaN or an
# out-of-range bound would make every comparison pass.
_BOUNDS = {"min_cosine": (-1.0, 1.0), "min_top1_agreement": (0.0, 1.0),
           "max_abs": (0.0, float("inf")), "max_batch_diff": (0.0, float("inf"))}


def validate_overrides(overrides: dict | None) -> dict:
    out = {}
    for name, value in (overrides or {}).items():
        if name not in _BOUNDS:
            raise OptionError(f"unknown tolerance {name!r}; available: {', '.join(_BOUNDS)}")
        lo, hi = _BOUNDS[name]
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise OptionError(f"{flag} {value} is out of range; use a finite number in "
                                 f"[{lo:g}, {hi:g}]")
        out[name] = float(value)
    return out


def tolerance_for(artifact_precision: str, compute_precision: str,
                  overrides: dict | None = None) -> tuple[str, Tolerance]:
    """The preset of the looser of what is stored and what was computed, then the overrides."""
    judged_as = judged(artifact_precision, compute_precision)
    return judged_as, replace(preset(judged_as), **(overrides or {}))


def preset(precision: str) -> Tolerance:
    """The tolerance preset of a judged precision (fp32's for one without a preset)."""
    return PRESETS.get(precision, PRESETS["fp32"])
