"""Paddle Inference: the reference runtime for exported Paddle models (PIR json or legacy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifact import find_paddle_program
from ..errors import ArtifactError
from ..quiet import quiet_stdout
from .base import Runtime

_PADDLE_INT8_MARKERS = (b"quantize_linear", b"fake_quantize", b"fake_channel_wise", b"quant_linear")


class PaddleRuntime(Runtime):
    name = "paddle"
    suffixes = (".json", ".pdmodel")
    kind = "paddle"  # the artifact kind it runs (artifact.artifact_kind)
    formats = "inference.json or inference.pdmodel, with inference.pdiparams"
    # Paddle 3's CPU defaults already run oneDNN kernels with IR optimisation (measured against
    # both off: docs/benchmarks.md). Not offered: enable_memory_optim, which cannot build a
    # predictor for a PIR program in Paddle 3.3 (pass_result_info.h:48).
    default_settings = {"onednn": True, "ir_optim": True}
    setting_choices = {"onednn": (True, False), "ir_optim": (True, False)}

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        return find_paddle_program(directory)

    @classmethod
    def stored_precision(cls, model_path: Path) -> str:
        """int8 when the program holds quantize ops (a quantization-aware export), else fp32."""
        data = model_path.read_bytes()
        return "int8" if any(m in data for m in _PADDLE_INT8_MARKERS) else "fp32"

    def load(self) -> None:
        from paddle import inference

        params = self.model_path.with_suffix(".pdiparams")
        if not params.is_file():
            raise ArtifactError(
                f"{self.model_path.parent} has no {params.name} beside {self.model_path.name}"
            )
        config = inference.Config(str(self.model_path), str(params))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(self.threads)
        config.disable_glog_info()
        if not self.settings["onednn"]:  # on by default (calling enable_onednn again breaks PIR)
            config.disable_onednn()
        config.switch_ir_optim(bool(self.settings["ir_optim"]))
        try:
            with quiet_stdout():  # oneDNN passes print to stdout while building the predictor
                self._predictor = inference.create_predictor(config)
        except Exception as e:  # corrupt program or parameters
            raise ArtifactError(
                f"Paddle Inference cannot load {self.model_path}: {str(e).strip().splitlines()[-1]}"
            ) from None
        self.compute_precision = self.artifact_precision  # Paddle runs the program's types
        self._seen_shapes: set[tuple[int, ...]] = set()
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        if batch.shape in self._seen_shapes:
            self._predictor.run()
        else:  # oneDNN picks kernels on a new shape and prints about it to stdout
            with quiet_stdout():
                self._predictor.run()
            self._seen_shapes.add(batch.shape)
        return self._output.copy_to_cpu()

    def close(self) -> None:
        self._predictor = None
