"""Build a registered model and load a checkpoint into it exactly (or refuse)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import DERIVED_BUFFERS, check_fit, safe_load, to_dtype
from ..errors import CheckpointError
from . import get_config, get_family
from .config import ModelConfig


@dataclass
class LoadedModel:
    model: Any  # paddle.nn.Layer, in eval mode
    config: ModelConfig
    num_classes: int
    variant: dict[str, Any]


def fold_for_export(model: Any) -> None:
    """Apply every layer's export-time folding (LeViT: BN into Linear/Conv, bias tables)."""
    for layer in model.sublayers(include_self=True):
        fold = getattr(layer, "fold_for_export", None)
        if fold is not None:
            fold()


def build_model(name: str, num_classes: int | None = None, **variant: Any) -> LoadedModel:
    """A model with freshly initialised weights (tests, training the sample)."""
    cfg = get_config(name)
    n = num_classes or cfg.num_classes
    model = get_family(cfg.family).build(cfg, n, **variant)
    model.eval()
    return LoadedModel(model, cfg, n, variant)


def load_model(name: str, weights: str | Path, num_classes: int | None = None) -> LoadedModel:
    """Build ``name`` shaped like the checkpoint and load every tensor, or raise CheckpointError."""
    cfg = get_config(name)
    family = get_family(cfg.family)
    state = safe_load(weights)
    variant = family.variant_from_state_dict(state)
    inferred = family.num_classes_from_state_dict(state)
    n = num_classes or inferred or cfg.num_classes
    loaded = build_model(cfg.name, n, **variant)
    own = loaded.model.state_dict()
    expected = {k: (tuple(v.shape), np.dtype(v.numpy().dtype)) for k, v in own.items()}
    report = check_fit(expected, state)
    if not report.ok:
        hint = ""
        if num_classes and inferred and num_classes != inferred:
            hint = f"; the checkpoint's head has {inferred} classes but --num-classes is {num_classes}"
        raise CheckpointError(
            f"checkpoint {weights} does not fit {cfg.name}: {report.summary()}{hint}"
        )
    for key, value in state.items():
        if key.endswith(DERIVED_BUFFERS) and not np.array_equal(value, own[key].numpy()):
            raise CheckpointError(
                f"checkpoint {weights}: {key} differs from {cfg.name}'s own attention layout; "
                "is it a checkpoint of another input resolution?"
            )
    converted = {k: to_dtype(v, expected[k][1]) for k, v in state.items()}
    converted.update({k: own[k].numpy() for k in expected if k not in converted})  # derived buffers
    loaded.model.set_state_dict(converted)
    loaded.model.eval()
    return loaded


def save_random_checkpoint(name: str, path: str | Path, seed: int = 0,
                           num_classes: int | None = None, **variant: Any) -> Path:
    """A seeded random checkpoint with every float tensor perturbed (biases, BN statistics and
    attention biases non-trivial), for the zoo matrix, benchmarks and tests."""
    import paddle

    paddle.seed(seed)
    model = build_model(name, num_classes, **variant).model
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in model.state_dict().items():
        a = value.numpy()
        if a.dtype.kind == "f":
            a = a + rng.normal(0.0, 0.02, a.shape).astype(a.dtype)
            if key.endswith("_variance"):
                a = np.abs(a) + 0.5
        state[key] = paddle.to_tensor(a)
    path = Path(path)
    paddle.save(state, str(path))
    return path
