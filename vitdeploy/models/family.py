"""What a model family is: its architectures (``ModelConfig``s), how to read a checkpoint's
variant and class count, its multiply-accumulates, and where its Paddle layers are. A leaf: it
knows no family; ``models/__init__.py`` lists them (one line each)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import ModelConfig


@dataclass(frozen=True)
class Family:
    name: str
    models: tuple[ModelConfig, ...]
    variant_from_state_dict: Callable[[dict[str, Any]], dict[str, Any]]
    num_classes_from_state_dict: Callable[[dict[str, Any]], int | None]
    macs: Callable[[ModelConfig], float]  # multiply-accumulates of conv + linear layers
    layers: str  # "module:function" below vitdeploy.models: (cfg, num_classes, **variant) -> Layer

    def build(self, cfg: ModelConfig, num_classes: int, **variant: Any) -> Any:
        """The Paddle model. Its layers module (it imports Paddle) loads only now: listing,
        sizing and looking models up never import Paddle."""
        module, name = self.layers.split(":")
        fn = getattr(importlib.import_module(f".{module}", __package__), name)
        return fn(cfg, num_classes, **variant)
