"""vitdeploy: deploy PaddlePaddle ViT / DeiT / LeViT classifiers to every runtime."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__", "bench"]


def __getattr__(name: str):
    if name == "Predictor":  # lazy: importing vitdeploy does not import any backend
        from .predictor import Predictor

        return Predictor
    if name == "bench":  # the module vitdeploy.bench, callable: vitdeploy.bench(...) is its bench()
        import importlib

        return importlib.import_module(".bench", __name__)
    raise AttributeError(name)
