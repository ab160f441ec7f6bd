"""ONNX Runtime on the CPU, full graph optimisation, one intra-op thread per physical core.

Session settings measured on DeiT-tiny/base (docs/benchmarks.md, benchmarks/session_settings.py);
``library`` builds a session with ONNX Runtime's own defaults, the "before" of that table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifact import find_onnx
from ..errors import ArtifactError, RuntimeUnavailableError, first_line
from ..resources import exact_int8_kernels, int8_mode, int8_note
from .base import Runtime

_LEVELS = ("disable", "basic", "extended", "all")
_ONNX_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul",
                  "QLinearConv", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                  "DynamicQuantizeMatMul", "QAttention", "QGemm", "MatMulNBits"}


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    suffixes = (".onnx",)
    kind = "onnx"  # the artifact kind it runs (artifact.artifact_kind)
    formats = "an .onnx file"
    default_settings = {"graph_optimization": "all", "mem_arena": True, "mem_pattern": True,
                        "spinning": True, "library": False, "int8": "auto"}
    setting_choices = {"graph_optimization": _LEVELS, "mem_arena": (True, False),
                       "mem_pattern": (True, False), "spinning": (True, False),
                       "library": (True, False), "int8": ("auto", "native", "emulated")}

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        return find_onnx(directory)

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        """int8 when the graph holds quantize / integer ops; else fp16 when most initializer
        elements are half, else fp32."""
        import onnx

        model = onnx.load(str(model_path), load_external_data=False)
        if any(n.op_type in _ONNX_INT8_OPS for n in model.graph.node):
            return "int8"
        sizes = {"fp16": 0, "fp32": 0}
        for t in model.graph.initializer:
            kind = {onnx.TensorProto.FLOAT16: "fp16", onnx.TensorProto.FLOAT: "fp32"}.get(t.data_type)
            if kind:
                n = 1
                for d in t.dims:
                    n *= d
                sizes[kind] += n
        return "fp16" if sizes["fp16"] > sizes["fp32"] else "fp32"

    @classmethod
    def batch_dependent(cls, model_path: Path) -> bool:
        """Dynamic int8 (ONNX Runtime's quantize_dynamic) takes activation scales from each
        batch, so one input's output depends on what it is batched with; static QDQ does not."""
        import onnx

        graph = onnx.load(str(model_path), load_external_data=False).graph
        ops = {n.op_type for n in graph.node}
        return "DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailableError("onnxruntime is not installed: pip install onnxruntime") from None
        opts, s = ort.SessionOptions(), self.settings
        opts.log_severity_level = 3
        if not s["library"]:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            level = _LEVELS.index(str(s["graph_optimization"]))
            opts.graph_optimization_level = (
                ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            )[level]
            opts.enable_cpu_mem_arena = bool(s["mem_arena"])
            opts.enable_mem_pattern = bool(s["mem_pattern"])
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if s["spinning"] else "0")
        mode = self._int8_mode()
        if mode == "emulated":  # QDQ pairs stay DequantizeLinear + float ops: exact int8 results
            opts.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            self._session = ort.InferenceSession(str(self.model_path), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ArtifactError(f"ONNX Runtime cannot load {self.model_path}: {first_line(e)}") from None
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.input_shape = list(inp.shape)
        self.compute_precision = self.artifact_precision  # the session runs the graph's types
        if mode is not None and (mode == "emulated" or not exact_int8_kernels()):
            self.notes.append(int8_note(mode))

    def _int8_mode(self) -> str | None:
        """For a static (QDQ) int8 graph: "native" or "emulated" (see resources.int8_mode);
        None for other graphs, which the setting does not change."""
        try:
            if self.artifact_precision != "int8" or self.batch_dependent(self.model_path):
                return None
        except Exception:  # an unreadable graph: the session's load says why, in one line
            return None
        return int8_mode(self.settings["int8"])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]
        except Exception as e:  # shape mismatch and the like
            raise ArtifactError(
                f"ONNX Runtime rejected a batch of shape {list(batch.shape)} for {self.model_path.name} "
                f"(expects {self.input_shape}): {first_line(e)}"
            ) from None

    def close(self) -> None:
        self._session = None
