"""Every quantization recipe in one table: a typed record each (like onnxruntime's
``StaticQuantConfig`` / ``DynamicQuantConfig``), keyed by the conversion target it belongs to and
the ``--quantize`` name it answers to. Options, help texts and the convert targets ask here;
adding a recipe is one module with its function plus one entry below."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import OptionError


@dataclass(frozen=True)
class Recipe:
    target: str  # the conversion target (--to) it quantizes for
    mode: str  # what --quantize names it
    calibrated: bool  # calibrates activation ranges: needs --calib
    budget: bool  # measures accuracy and honours --max-drop / --eval-data
    summary: str  # one line, for help and docs
    function: str | None  # "module:function" below vitdeploy.quantize; None: the target applies it

    def load(self) -> Callable[..., dict]:
        """The recipe's function, imported when a conversion runs (heavy dependencies)."""
        if self.function is None:
            raise OptionError(f"--quantize {self.mode} for --to {self.target} is applied by the "
                              "target's own tool, not run as a recipe")
        module, name = self.function.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), name)


RECIPES: tuple[Recipe, ...] = (
    Recipe("onnx", "int8", True, True, "ONNX Runtime static QDQ, transformer-aware (weight layers "
           "int8, LayerNorm/Softmax/GELU float)", "onnxruntime:quantize_onnx"),
    Recipe("onnx", "dynamic-int8", False, True, "ONNX Runtime dynamic: MatMul weights int8, "
           "activation ranges at run time", "onnxruntime:quantize_onnx"),
    Recipe("openvino", "int8", True, True, "NNCF post-training, transformer model type, optional "
           "accuracy control", "openvino:quantize_ir"),
    Recipe("lite", "int8", False, False, "weight-only int8 by Paddle Lite's opt", None),
    Recipe("lite", "int16", False, False, "weight-only int16 by Paddle Lite's opt", None),
)


def modes(target: str) -> tuple[str, ...]:
    """The --quantize names ``target`` offers, in table order."""
    return tuple(r.mode for r in RECIPES if r.target == target)


def get_recipe(target: str, mode: str) -> Recipe:
    for r in RECIPES:
        if r.target == target and r.mode == mode:
            return r
    offered = ", ".join(modes(target)) or "none"
    raise OptionError(f"--quantize {mode!r} is not available for --to {target}; choose {offered}")
