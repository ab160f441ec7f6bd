"""The model zoo: registered architectures by name (case-insensitive)."""

from .config import ModelConfig, PreprocessConfig
from .registry import Family, get_config, get_family, list_models, register, register_family

__all__ = [
    "Family", "ModelConfig", "PreprocessConfig", "get_config", "get_family", "list_models",
    "register", "register_family",
]
