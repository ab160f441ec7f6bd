"""vitdeploy: deploy PaddlePaddle ViT / DeiT / LeViT classifiers to every runtime.

``import vitdeploy`` stays light (no numpy, no backend): ``vitdeploy.Predictor`` is imported
when first used; the workflows are packages of their own (``vitdeploy.convert``,
``vitdeploy.check``, ``vitdeploy.bench``, ``vitdeploy.bundles``, ``vitdeploy.serve``)."""

from __future__ import annotations

from .about import __version__

__all__ = ["Predictor", "__version__", "optimize"]


def __getattr__(name: str):
    if name == "Predictor":  # lazy: importing vitdeploy does not import any backend
        from .predictor import Predictor

        return Predictor
    if name == "optimize":  # the workflow's function (its package is vitdeploy.search)
        from .search import optimize

        return optimize
    raise AttributeError(name)
