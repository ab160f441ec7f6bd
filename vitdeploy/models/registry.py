"""One registry for architectures and model families; every lookup goes through here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownModelError
from .config import ModelConfig


@dataclass(frozen=True)
class Family:
    """How to build, size and read checkpoints for one family of architectures."""

    name: str
    build: Callable[..., Any]  # (cfg, num_classes, **variant) -> paddle.nn.Layer
    variant_from_state_dict: Callable[[dict[str, Any]], dict[str, Any]]
    num_classes_from_state_dict: Callable[[dict[str, Any]], int | None]
    macs: Callable[[ModelConfig], float]  # multiply-accumulates of conv + linear layers


_MODELS: dict[str, ModelConfig] = {}
_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def register(cfg: ModelConfig) -> ModelConfig:
    key = cfg.name.lower()
    if key in _MODELS:
        raise ValueError(f"model {cfg.name!r} registered twice")
    _MODELS[key] = cfg
    return cfg


def _ensure_loaded() -> None:
    if not _MODELS:
        from . import levit, vit  # noqa: F401  (registration side effect)


def get_config(name: str) -> ModelConfig:
    """Look a model up by name, case-insensitively."""
    _ensure_loaded()
    cfg = _MODELS.get(name.lower())
    if cfg is None:
        raise UnknownModelError(
            f"unknown model {name!r}; run 'vitdeploy models' to list the "
            f"{len(list_models())} supported names (e.g. DeiT_tiny_patch16_224, LeViT_128S)"
        )
    return cfg


def get_family(name: str) -> Family:
    _ensure_loaded()
    return _FAMILIES[name]


def list_models(include_samples: bool = False) -> list[ModelConfig]:
    _ensure_loaded()
    return [c for c in _MODELS.values() if c.seed or include_samples]
