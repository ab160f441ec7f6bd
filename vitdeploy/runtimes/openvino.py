"""OpenVINO on the CPU. Reads IR (model.xml) or ONNX directly; never Paddle's PIR json.

On CPUs with AVX-512 BF16 / AMX, OpenVINO silently computes in bf16 by default (~1e-2 off);
we ask for f32 unless bf16 is requested, and report what the compiled model really uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..artifact import find_ir, find_onnx
from ..errors import ArtifactError, RuntimeUnavailableError, first_line
from ..resources import exact_int8_kernels, int8_mode, int8_note
from .base import Runtime
from .onnxruntime import OnnxRuntime

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVinoRuntime(Runtime):
    name = "openvino"
    suffixes = (".xml",)
    kind = "openvino"  # the artifact kind it runs (artifact.artifact_kind)
    formats = "model.xml (+ model.bin) or an .onnx file"
    precision_choices = tuple(_HINTS)
    default_settings = {"hint": "LATENCY", "streams": "auto", "int8": "auto"}
    setting_choices = {"hint": ("LATENCY", "THROUGHPUT", "library"), "streams": ("auto", 1, 2, 4),
                       "int8": ("auto", "native", "emulated")}

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        return find_ir(directory) or find_onnx(directory)

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        """IR xml: FakeQuantize (NNCF int8) or int8/uint8 weight constants -> int8; weights stored
        as f16 (compress_to_fp16) -> fp16. Counted by constant size, as the .bin holds them. An
        ONNX file (OpenVINO reads those too) is read as ONNX Runtime reads it."""
        import xml.etree.ElementTree as ET

        if model_path.suffix.lower() == ".onnx":
            return OnnxRuntime.stored_precision(model_path)

        try:
            root = ET.parse(model_path).getroot()
        except ET.ParseError:
            return "unknown"
        sizes: dict[str, int] = {}
        for layer in root.iter("layer"):
            kind = layer.get("type")
            if kind == "FakeQuantize":
                return "int8"
            if kind == "Const":
                data = layer.find("data")
                if data is not None:
                    et = data.get("element_type", "")
                    sizes[et] = sizes.get(et, 0) + int(data.get("size", "0") or 0)
        if not sizes:
            return "fp32"
        biggest = max(sizes, key=sizes.get)
        return {"f16": "fp16", "i8": "int8", "u8": "int8", "i4": "int8", "u4": "int8",
                "bf16": "bf16"}.get(biggest, "fp32")

    def load(self) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise RuntimeUnavailableError("openvino is not installed: pip install openvino") from None
        want = self.requested_precision or "fp32"  # one of _HINTS: Runtime.__init__ checked
        core = ov.Core()
        caps = capabilities(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        hint = _HINTS[want] if _CAPABILITY.get(want, "FP32") in caps else "f32"
        config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": hint}
        if self.settings["hint"] != "library":
            config["PERFORMANCE_HINT"] = self.settings["hint"]
        if self.settings["streams"] != "auto":
            config["NUM_STREAMS"] = int(self.settings["streams"])
        try:
            model = core.read_model(str(self.model_path))
            mode = int8_mode(self.settings["int8"]) if _has_fake_quantize(model) else None
            if mode == "emulated":  # low-precision transformations off: FakeQuantize stays a
                # float op, so the IR's int8 arithmetic is computed exactly (a CPU plugin key)
                try:
                    self._compiled = core.compile_model(model, "CPU",
                                                        {**config, "LP_TRANSFORMS_MODE": False})
                except Exception:  # a plugin without the key: its int8 kernels, said below
                    mode = "native"
            if mode != "emulated":
                self._compiled = core.compile_model(model, "CPU", config)
        except Exception as e:
            raise ArtifactError(f"OpenVINO cannot load {self.model_path}: {first_line(e)}") from None
        self._request = self._compiled.create_infer_request()
        used = str(self._compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        found = re.search(r"(f32|float32|bf16|bfloat16|f16|float16)", used)
        self.compute_precision = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16",
                                  "f16": "fp16", "float16": "fp16"}.get(found.group(1) if found else "", used)
        note = fallback_note(want, self.compute_precision, caps)
        if note:
            self.notes.append(note)
        if mode is not None or _runs_int8(self._compiled):  # an NNCF IR: its quantized layers
            self.compute_precision = "int8"  # run u8/i8 kernels, or their exact emulation
        if mode is not None and (mode == "emulated" or not exact_int8_kernels()):
            self.notes.append(int8_note(mode))
        self.input_shape = [str(d) for d in self._compiled.input(0).get_partial_shape()]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        try:
            result = self._request.infer({0: np.ascontiguousarray(batch, np.float32)})
        except Exception as e:
            raise ArtifactError(
                f"OpenVINO rejected a batch of shape {list(batch.shape)} for {self.model_path.name} "
                f"(expects {self.input_shape}): {first_line(e)}"
            ) from None
        return np.array(result[self._compiled.output(0)], copy=True)

    def close(self) -> None:
        self._request = None
        self._compiled = None


_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
# the CPU flags behind each capability, for a machine pretended with $VITDEPLOY_CPU_FLAGS
_FLAGS = {"BF16": {"avx512_bf16", "amx_bf16"}, "FP16": {"avx512_fp16", "amx_fp16"}}


def capabilities(reported: list[str] | tuple[str, ...]) -> list[str]:
    """OpenVINO's CPU capabilities, less those the (pretended) CPU flags do not back: on a
    machine run as another would look, bf16 is absent where its flags say so."""
    from ..resources import cpu_flags, pretended_flags

    if not pretended_flags():
        return list(reported)
    flags = cpu_flags()
    return [c for c in reported if c not in _FLAGS or _FLAGS[c] & flags]


def fallback_note(requested: str, used: str, capabilities: list[str] | tuple[str, ...]) -> str | None:
    """Say so when the CPU could not compute in the precision asked for (never a silent swap)."""
    if requested == used:
        return None
    if _CAPABILITY.get(requested) and _CAPABILITY[requested] not in capabilities:
        return f"this CPU has no {requested}; computed in {used}"
    return f"asked for {requested}; OpenVINO computed in {used}"


def _has_fake_quantize(model) -> bool:
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


_GEMM_LAYERS = {"FullyConnected", "MatMul", "Convolution", "ScaledAttn"}


def _runs_int8(compiled) -> bool:
    """Whether the compiled (runtime) graph runs matrix layers in integer precision."""
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in _GEMM_LAYERS and \
                info["runtimePrecision"].astype(str) in ("u8", "i8"):
            return True
    return False
