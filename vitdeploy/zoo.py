"""Model-zoo facts: parameter and FLOP counts in the seed tables' conventions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import get_config, get_family, list_models

# Seed convention: position embeddings and class/distillation tokens are not counted.
_UNCOUNTED = ("pos_embed", "cls_token", "dist_token")
# Released LeViT checkpoints carry the distillation head, and the seed counts include it.
_COUNT_VARIANT = {"levit": {"distillation": True}}


@dataclass
class ModelRow:
    name: str
    family: str
    params_m: float
    flops_g: float
    input_size: int
    resize_short: int
    interpolation: str
    normalize: str


def count_params(name: str) -> int:
    """Parameters of the built model, shapes only (built under LazyGuard: nothing initialised)."""
    import paddle

    cfg = get_config(name)
    with paddle.LazyGuard():
        model = get_family(cfg.family).build(cfg, cfg.num_classes,
                                             **_COUNT_VARIANT.get(cfg.family, {}))
    total = sum(int(np.prod(p.shape)) for n, p in model.named_parameters()
                if not p.stop_gradient and n.split(".")[-1] not in _UNCOUNTED)  # BN stats excluded
    # BatchNorm counts as deployed (folded), as LeViT's published sizes do: after a bias-free
    # conv/linear it becomes that layer's bias (C), before a linear it vanishes.
    for layer in model.sublayers():
        bn = getattr(layer, "bn", None)
        if bn is not None and hasattr(layer, "fold_for_export"):
            channels = int(bn.weight.shape[0])
            total -= 2 * channels
            if hasattr(layer, "c"):
                total += channels
    return total


def count_flops(name: str) -> float:
    """Multiply-accumulates of conv and linear layers (and attention products), as the seed does."""
    cfg = get_config(name)
    return float(get_family(cfg.family).macs(cfg))


def model_table(include_samples: bool = False) -> list[ModelRow]:
    rows = []
    for cfg in list_models(include_samples):
        pre = cfg.preprocess
        norm = "imagenet" if pre.mean[0] == 0.485 else "/".join(f"{m:g}" for m in pre.mean[:1])
        rows.append(ModelRow(cfg.name, cfg.family, round(count_params(cfg.name) / 1e6, 2),
                             round(count_flops(cfg.name) / 1e9, 3), cfg.input_size,
                             pre.resize_short, pre.interpolation, norm))
    return rows
