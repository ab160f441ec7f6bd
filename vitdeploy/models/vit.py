"""ViT, DeiT and distilled DeiT: the plain transformer family.

State-dict keys and forward math follow PaddleClas (``vision_transformer.py`` and
``distilled_vision_transformer.py``), so its checkpoints load unchanged; PASSL's ViT adds a
``head0`` pre-logits layer with tanh. Inference only: no dropout or drop-path layers, and the
batch dimension stays dynamic in exported graphs.
"""

from __future__ import annotations

from typing import Any

from .config import HALF, ModelConfig, PreprocessConfig
from .family import Family

# PaddleClas Infer transforms (ppcls/configs/ImageNet/{DeiT,VisionTransformer}/*.yaml).
_DEIT_224 = PreprocessConfig(resize_short=256, crop_size=224)
_DEIT_384 = PreprocessConfig(resize_short=438, crop_size=384)
# ViT's Infer config names no interpolation/backend: PaddleClas's default, OpenCV bilinear.
_VIT_224 = PreprocessConfig(resize_short=256, crop_size=224, interpolation="bilinear",
                            backend="cv2", mean=HALF, std=HALF)
_VIT_384 = PreprocessConfig(resize_short=384, crop_size=384, interpolation="bilinear",
                            backend="cv2", mean=HALF, std=HALF)

_STD = dict(mlp_ratio=4, qkv_bias=True, epsilon=1e-6)
_TINY = dict(embed_dim=192, depth=12, num_heads=3, patch_size=16, **_STD)
_SMALL = dict(embed_dim=384, depth=12, num_heads=6, patch_size=16, **_STD)
_BASE = dict(embed_dim=768, depth=12, num_heads=12, **_STD)
_LARGE = dict(embed_dim=1024, depth=24, num_heads=16, **_STD)


_MODELS: list[ModelConfig] = []


def _reg(name: str, size: int, pre: PreprocessConfig, **arch: Any) -> None:
    _MODELS.append(ModelConfig(name=name, family="vit", input_size=size, preprocess=pre, arch=arch))


for _d, _suffix in ((False, ""), (True, "distilled_")):
    _reg(f"DeiT_tiny_{_suffix}patch16_224", 224, _DEIT_224, distilled=_d, **_TINY)
    _reg(f"DeiT_small_{_suffix}patch16_224", 224, _DEIT_224, distilled=_d, **_SMALL)
    _reg(f"DeiT_base_{_suffix}patch16_224", 224, _DEIT_224, distilled=_d, patch_size=16, **_BASE)
    _reg(f"DeiT_base_{_suffix}patch16_384", 384, _DEIT_384, distilled=_d, patch_size=16, **_BASE)

# ViT_small is timm's original variant: no qkv bias, qk_scale dim**-0.5, LayerNorm eps 1e-5.
_reg("ViT_small_patch16_224", 224, _VIT_224, patch_size=16, embed_dim=768, depth=8,
     num_heads=8, mlp_ratio=3, qkv_bias=False, qk_scale=768 ** -0.5, epsilon=1e-5)
_reg("ViT_base_patch16_224", 224, _VIT_224, patch_size=16, **_BASE)
_reg("ViT_base_patch16_384", 384, _VIT_384, patch_size=16, **_BASE)
_reg("ViT_base_patch32_384", 384, _VIT_384, patch_size=32, **_BASE)
_reg("ViT_large_patch16_224", 224, _VIT_224, patch_size=16, **_LARGE)
_reg("ViT_large_patch16_384", 384, _VIT_384, patch_size=16, **_LARGE)
_reg("ViT_large_patch32_384", 384, _VIT_384, patch_size=32, **_LARGE)

# Our own sample (samples/train_digits.py): a small DeiT for 8x8 handwritten digits shown at 32x32.
_MODELS.append(ModelConfig(
    name="DeiT_digits_patch8_32", family="vit", input_size=32, num_classes=10, seed=False,
    preprocess=PreprocessConfig(resize_short=32, crop_size=32, mean=HALF, std=HALF),
    arch=dict(embed_dim=64, depth=4, num_heads=4, patch_size=8, **_STD),
))


def _variant(state_dict: dict[str, Any]) -> dict[str, Any]:
    return {"pre_logits": "head0.weight" in state_dict}


def _num_classes(state_dict: dict[str, Any]) -> int | None:
    w = state_dict.get("head.weight")
    return int(w.shape[1]) if w is not None and len(w.shape) == 2 else None


def _macs(cfg: ModelConfig) -> float:
    a = cfg.arch
    dim, patch = a["embed_dim"], a["patch_size"]
    n_patches = (cfg.input_size // patch) ** 2
    tokens = n_patches + (2 if a.get("distilled") else 1)
    hidden = int(dim * a["mlp_ratio"])
    per_block = tokens * (dim * 3 * dim + dim * dim + 2 * dim * hidden)
    heads = 2 if a.get("distilled") else 1
    return (n_patches * 3 * patch * patch * dim + a["depth"] * per_block
            + heads * dim * cfg.num_classes)


FAMILY = Family("vit", tuple(_MODELS), _variant, _num_classes, _macs, layers="vit_layers:build")
