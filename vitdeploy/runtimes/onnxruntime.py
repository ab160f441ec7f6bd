"""ONNX Runtime on the CPU, full graph optimisation, one intra-op thread per physical core."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArtifactError, RuntimeUnavailableError, first_line
from .base import Runtime


def find_onnx(directory: Path) -> Path | None:
    if (directory / "model.onnx").is_file():
        return directory / "model.onnx"
    found = sorted(directory.glob("*.onnx"))
    return found[0] if len(found) == 1 else None


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    formats = "an .onnx file"

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        return find_onnx(directory)

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailableError("onnxruntime is not installed: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.model_path), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ArtifactError(f"ONNX Runtime cannot load {self.model_path}: {first_line(e)}") from None
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.input_shape = list(inp.shape)
        self.compute_precision = self.artifact_precision  # the session runs the graph's types

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
