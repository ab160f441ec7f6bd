"""Paddle Lite ``.nb`` through the managed Lite toolchain (see lite/env.py).

checkpoint -> (Paddle 2.6) legacy program -> compatibility passes -> preflight -> opt. For an
ARM/OpenCL target an x86 twin is built from the same legacy program, so parity can be proven on
this machine; ``vitdeploy inspect`` proves the ARM file is fully placed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..artifact import NB_TWIN, sha256
from ..errors import ArtifactError, CheckpointError, ExportError, OptionError
from ..lite import env as lite_env
from ..lite.naive_buffer import DEQUANTIZED_OPS, canonicalize_nb, read_nb
from ..options import TargetOptions, choice
from ..quantize.recipes import get_recipe
from .source import Source
from .target import Target

ARCHES = {"arm8": "arm", "armv7": "arm", "x86": "x86", "opencl": "opencl,arm"}


def _weights(source: Source, weights: str | Path | None) -> Path:
    recorded = source.manifest.get("source", {})
    path = Path(weights) if weights else (Path(recorded["path"]) if recorded.get("path") else None)
    if path is None or not path.is_file():
        hint = (f"the export recorded {recorded['path']}, which is gone" if recorded.get("path")
                else f"the .pdparams {source.directory} was exported from")
        raise CheckpointError(
            f"Paddle Lite's opt reads only legacy .pdmodel programs, which Paddle 3 cannot write, "
            f"so vitdeploy re-exports {source.model_name or 'the model'} from its checkpoint under "
            f"Paddle 2.6: pass --weights CKPT ({hint})"
        )
    if recorded.get("sha256") and sha256(path) != recorded["sha256"]:
        raise CheckpointError(f"{path} is not the checkpoint {source.directory} was exported from "
                              "(sha256 differs)")
    return path


def _build_twin(legacy: str, out: Path, arch: str, quantize: str | None) -> str:
    """The x86 twin of an ARM build, from the same legacy program. Lite's x86 kernels give NaN
    on weight-quantized models, so for --quantize the twin is an fp32 build whose weights are
    rounded exactly as the ARM .nb stores them (intN x its per-channel scales)."""
    source_dir, weights = legacy, "fp32"
    if quantize:
        nb = read_nb(out / "model.nb")
        if not nb.quant_scales:
            raise ExportError(f"opt wrote no quantization scales into the {arch} .nb")
        if nb.undequantized():  # the phone would compute with uninitialised weights
            raise ExportError(
                f"--quantize {quantize}: opt quantized weights of {', '.join(nb.undequantized())}, "
                "which Paddle Lite 2.13 does not dequantize when it loads the .nb (only "
                f"{', '.join(sorted(DEQUANTIZED_OPS))}); convert without --quantize")
        source_dir = legacy + "-twin"
        res = lite_env.run_worker("fake_quant", {
            "model_dir": legacy, "out_dir": source_dir, "bits": max(nb.quant_bits),
            "scales": {k: list(v) for k, v in nb.quant_scales.items()}})
        if "error" in res:
            raise ExportError(res["error"])
        weights = f"{quantize} weights emulated"
    res = lite_env.run_worker("optimize", {"model_dir": source_dir, "valid_places": "x86",
                                           "out_prefix": str(out / "model.x86")})
    if "error" in res:
        raise ExportError(res["error"])
    canonicalize_nb(out / "model.x86.nb")
    return weights


@dataclass(frozen=True)
class Options(TargetOptions):
    arch: str = "arm8"
    quantize: str | None = None  # weight-only int8 / int16
    fp16: bool = False  # ARMv8.2 fp16 kernels (arm8)
    weights: Path | None = None  # the checkpoint, when the export's recorded one moved

    def __post_init__(self) -> None:
        if self.weights is not None:
            object.__setattr__(self, "weights", Path(self.weights))

    def validate(self, target: str) -> None:
        choice(target, "arch", self.arch, tuple(ARCHES))
        if self.quantize is not None:
            get_recipe(target, self.quantize)  # weight-only, applied by opt below
        if self.fp16 and self.arch != "arm8":
            raise OptionError("--fp16 targets ARMv8.2 fp16 kernels: use it with --arch arm8")
        if self.quantize and self.arch == "x86":
            raise OptionError("Paddle Lite 2.13's x86 kernels return NaN on weight-quantized "
                              "models; use --quantize with --arch arm8, armv7 or opencl")


def manifest_section(details: dict) -> dict:
    """What the Lite runtime reads back from an artifact's manifest."""
    return {"lite": {"arch": details["arch"], "x86_twin": details.get("x86_twin"),
                     "x86_twin_weights": details.get("x86_twin_weights")}}


def convert(source: Source, out: Path, options: Options,
            progress: Callable[[str], None] = lambda _m: None) -> dict:
    arch, quantize, fp16, weights = options.arch, options.quantize, options.fp16, options.weights
    if not source.model_name:
        raise ArtifactError(f"{source.directory}: unknown architecture; pass --model NAME")
    # A legacy (Paddle 2.x) program is what opt reads: use it as it is, unless a checkpoint is
    # named or recorded (then the re-export with our deployment folding is preferred).
    direct = (source.model_file.suffix == ".pdmodel" and weights is None
              and not source.manifest.get("source", {}).get("path"))
    ckpt = None if direct else _weights(source, weights)
    lite_env.require()
    with tempfile.TemporaryDirectory(prefix="vitdeploy-legacy-") as tmp:
        if direct:
            exported = lite_env.run_worker("legacy", {"src": str(source.model_file), "out": tmp})
        else:
            # the re-export must match the source export's program, softmax included (a bare
            # PaddleClas directory has no manifest: logits, as its inference.yml says)
            exported = lite_env.run_worker("export", {
                "model": source.model_name, "weights": str(ckpt), "out": tmp,
                "num_classes": source.manifest.get("num_classes"),
                "softmax": bool(source.manifest.get("softmax"))})
        pre = lite_env.run_worker("preflight", {"model_dir": tmp, "valid_places": ARCHES[arch]})
        if pre["unsupported"]:
            raise ExportError(f"Paddle Lite has no {arch} kernel for: {', '.join(pre['unsupported'])}; "
                              "opt would fail on them")
        res = lite_env.run_worker("optimize", {
            "model_dir": tmp, "valid_places": ARCHES[arch], "out_prefix": str(out / "model"),
            "quantize": quantize, "fp16": fp16})
        if "error" in res:
            raise ExportError(res["error"])
        canonicalize_nb(out / "model.nb")  # same model, same bytes (opt leaves junk in the header)
        nb = read_nb(out / "model.nb")
        if fp16 and not any(op.precision == "kFP16" for op in nb.ops):
            raise ExportError("--fp16: opt placed no op on an fp16 kernel; the PyPI paddlelite "
                              "2.13rc0 opt is built without ARMv8.2 fp16 (LITE_WITH_ARM82_FP16), "
                              "so use a source build of opt for fp16 models, or drop --fp16")
        unplaced = nb.unplaced(arch)
        if unplaced:
            raise ExportError(f"opt left ops without a {arch} kernel: {', '.join(unplaced)}")
        twin = _build_twin(tmp, out, arch, quantize) if arch != "x86" else None
    details = {"model_file": "model.nb", "arch": arch, "valid_places": ARCHES[arch],
               "quantize": quantize, "fp16": fp16, "opt_version": nb.opt_version,
               "passes": exported["passes"], "legacy_ops": exported["ops"],
               "weights_precision": nb.weight_precision(), "needs_extra": nb.needs_extra(),
               "paddle_legacy": exported["paddle"],
               "from": "legacy program as given" if direct else "checkpoint re-exported"}
    if twin:
        details["x86_twin"] = NB_TWIN
        details["x86_twin_weights"] = twin
    return details


TARGET = Target("lite", "Paddle Lite .nb for arm8, armv7, x86, opencl (weight-only int8/int16)",
                Options, convert, manifest_section)
