"""The quantization options ONNX and OpenVINO targets share, and the step that runs a recipe:
calibration and evaluation data are prepared here, once, through the source's own
preprocessing; the recipe (quantize/onnxruntime.py, quantize/openvino.py) only quantizes."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..options import TargetOptions, positive_int
from .calib import DEFAULT_CALIB_SIZE, MAX_CALIB_SIZE, Calibration, EvalSet, load_calibration
from .recipes import get_recipe, modes


@dataclass(frozen=True)
class QuantizeOptions(TargetOptions):
    quantize: str | None = None
    calib: Path | None = None  # calibration images (training-style), never the eval data
    calib_size: int | None = None  # default DEFAULT_CALIB_SIZE
    max_drop: float | None = None  # accuracy budget, top-1 points, measured on eval_data
    eval_data: Path | None = None  # labelled images: folder or PaddleClas list file

    def __post_init__(self) -> None:
        for name in ("calib", "eval_data"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))

    def validate_quantize(self, target: str) -> None:
        if self.quantize is None:
            extra = [n for n in ("calib", "calib_size", "max_drop", "eval_data")
                     if getattr(self, n) is not None]
            if extra:
                raise OptionError(f"--{extra[0].replace('_', '-')} goes with --quantize; --to {target} "
                                  f"offers --quantize {', '.join(modes(target))}")
            return
        recipe = get_recipe(target, self.quantize)
        if getattr(self, "precision", "fp32") != "fp32":
            raise OptionError("--quantize and --precision fp16 exclude each other; pick one")
        if recipe.calibrated and self.calib is None:
            raise OptionError(f"--quantize {self.quantize} calibrates activations: pass --calib DIR "
                              "(a folder of training-style images, not your evaluation data)")
        if not recipe.calibrated and (self.calib or self.calib_size):
            raise OptionError(f"--quantize {self.quantize} needs no calibration; drop --calib")
        if self.calib_size is not None:
            positive_int(self.calib_size, "--calib-size", 1, MAX_CALIB_SIZE)
        if self.max_drop is not None:
            if not isinstance(self.max_drop, (int, float)) or not math.isfinite(self.max_drop) \
                    or not 0 <= self.max_drop <= 100:
                raise OptionError(f"--max-drop {self.max_drop} is out of range; top-1 points in 0..100")
            if self.eval_data is None:
                raise OptionError("--max-drop is measured on labelled images: pass --eval-data DIR")


def prepare(options: QuantizeOptions, source, progress: Callable[[str], None]
            ) -> tuple[Calibration | None, EvalSet | None]:
    """Calibration and evaluation data through the source's preprocessing (inference.yml)."""
    pre = source.info.preprocess
    calib = None
    if options.calib is not None:
        calib = load_calibration(options.calib, pre, options.calib_size or DEFAULT_CALIB_SIZE,
                                 eval_data=options.eval_data, progress=progress)
    eval_set = None
    if options.eval_data is not None:
        from ..check.evaluate import labelled_data
        from ..preprocess import preprocess_batch

        pairs = labelled_data(options.eval_data, source.info.labels)
        progress(f"evaluation data: preprocessing {len(pairs)} images from {options.eval_data}")
        eval_set = EvalSet(preprocess_batch([p for p, _ in pairs], pre),
                           np.array([c for _, c in pairs], dtype=np.int64), str(options.eval_data))
    return calib, eval_set


def run_recipe(target: str, fp32_model: Path, dest: Path, options: QuantizeOptions,
               source, progress: Callable[[str], None]) -> dict:
    """The recipe ``--to target --quantize MODE`` names (recipes.RECIPES), on prepared data."""
    recipe = get_recipe(target, str(options.quantize)).load()
    calib, eval_set = prepare(options, source, progress)
    return recipe(fp32_model, dest, options.quantize, calib, eval_set=eval_set,
                  max_drop=options.max_drop, progress=progress)
