"""Paddle Inference: the reference runtime for exported Paddle models (PIR json or legacy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from .base import Runtime


class PaddleRuntime(Runtime):
    name = "paddle"

    @classmethod
    def find_model(cls, directory: Path) -> Path | None:
        for prog in ("inference.json", "inference.pdmodel"):
            if (directory / prog).is_file():
                return directory / prog
        return None

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
        try:
            self._predictor = inference.create_predictor(config)
        except Exception as e:  # corrupt program or parameters
            raise ArtifactError(
                f"Paddle Inference cannot load {self.model_path}: {str(e).strip().splitlines()[-1]}"
            ) from None
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        self._predictor.run()
        return self._output.copy_to_cpu()

    def close(self) -> None:
        self._predictor = None
