"""ViT, DeiT and distilled DeiT: the plain transformer family.

State-dict keys and forward math follow PaddleClas (``vision_transformer.py`` and
``distilled_vision_transformer.py``), so its checkpoints load unchanged; PASSL's ViT adds a
``head0`` pre-logits layer with tanh. Inference only: no dropout or drop-path layers, and the
batch dimension stays dynamic in exported graphs.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn

from .config import HALF, ModelConfig, PreprocessConfig
from .registry import Family, register, register_family


class Mlp(nn.Layer):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Layer):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_scale: float | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, c = x.shape[1], x.shape[2]  # static: fixed by the input resolution
        qkv = self.qkv(x).reshape([-1, n, 3, self.num_heads, c // self.num_heads])
        qkv = qkv.transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale
        attn = nn.functional.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, n, c])
        return self.proj(x)


class Block(nn.Layer):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, epsilon: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Layer):
    def __init__(self, img_size: int, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2D(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose([0, 2, 1])


class VisionTransformer(nn.Layer):
    """ViT / DeiT; ``distilled`` adds DeiT's distillation token and head (outputs averaged)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, num_classes: int = 1000,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = False, qk_scale: float | None = None,
                 epsilon: float = 1e-5, distilled: bool = False, pre_logits: bool = False) -> None:
        super().__init__()
        self.distilled = distilled
        self.pre_logits = pre_logits
        self.patch_embed = PatchEmbed(img_size, patch_size, embed_dim)
        n_tokens = self.patch_embed.num_patches + (2 if distilled else 1)
        zeros = nn.initializer.Constant(0.0)
        self.pos_embed = self.create_parameter([1, n_tokens, embed_dim], default_initializer=zeros)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=zeros)
        if distilled:
            self.dist_token = self.create_parameter([1, 1, embed_dim], default_initializer=zeros)
        self.blocks = nn.LayerList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, qk_scale, epsilon) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        if pre_logits:  # PASSL ViT: Linear(dim, dim) + tanh before the classifier
            self.head0 = nn.Linear(embed_dim, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        if distilled:
            self.head_dist = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        batch = paddle.shape(x)[0]  # a tensor, so the exported batch stays dynamic
        x = self.patch_embed(x)
        tokens = [self.cls_token.expand([batch, -1, -1])]
        if self.distilled:
            tokens.append(self.dist_token.expand([batch, -1, -1]))
        x = paddle.concat(tokens + [x], axis=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        cls = x[:, 0]
        if self.pre_logits:
            cls = paddle.tanh(self.head0(cls))
        out = self.head(cls)
        if self.distilled:
            out = (out + self.head_dist(x[:, 1])) / 2
        return out


def _build(cfg: ModelConfig, num_classes: int, **variant: Any) -> VisionTransformer:
    return VisionTransformer(img_size=cfg.input_size, num_classes=num_classes,
                             **{**cfg.arch, **variant})


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


register_family(Family("vit", _build, _variant, _num_classes, _macs))

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


def _reg(name: str, size: int, pre: PreprocessConfig, **arch: Any) -> None:
    register(ModelConfig(name=name, family="vit", input_size=size, preprocess=pre, arch=arch))


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
register(ModelConfig(
    name="DeiT_digits_patch8_32", family="vit", input_size=32, num_classes=10, seed=False,
    preprocess=PreprocessConfig(resize_short=32, crop_size=32, mean=HALF, std=HALF),
    arch=dict(embed_dim=64, depth=4, num_heads=4, patch_size=8, **_STD),
))
