"""The model zoo: every architecture by name (case-insensitive), by family.

Each family is one module declaring a ``FAMILY`` (its ``ModelConfig``s and facts; its Paddle
layers live in a ``*_layers`` module, imported only to build a model); the registry is the table
below, one line per family. Nothing here imports Paddle."""

from __future__ import annotations

from ..errors import UnknownModelError
from . import levit, vit
from .config import ModelConfig, PreprocessConfig
from .family import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (
    vit.FAMILY,
    levit.FAMILY,
)}
_MODELS: dict[str, ModelConfig] = {}
for _family in FAMILIES.values():
    for _cfg in _family.models:
        if _cfg.name.lower() in _MODELS:
            raise ValueError(f"model {_cfg.name!r} declared twice")
        _MODELS[_cfg.name.lower()] = _cfg


def get_config(name: str) -> ModelConfig:
    """Look a model up by name, case-insensitively."""
    cfg = _MODELS.get(name.lower())
    if cfg is None:
        raise UnknownModelError(
            f"unknown model {name!r}; run 'vitdeploy models' to list the "
            f"{len(list_models())} supported names (e.g. DeiT_tiny_patch16_224, LeViT_128S)"
        )
    return cfg


def get_family(name: str) -> Family:
    return FAMILIES[name]


def list_models(include_samples: bool = False) -> list[ModelConfig]:
    return [c for c in _MODELS.values() if c.seed or include_samples]


__all__ = ["FAMILIES", "Family", "ModelConfig", "PreprocessConfig", "get_config", "get_family",
           "list_models"]
