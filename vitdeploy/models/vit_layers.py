"""The ViT / DeiT layers in Paddle (see vit.py for the family): state-dict keys and forward math
follow PaddleClas (``vision_transformer.py`` and ``distilled_vision_transformer.py``)."""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn

from .config import ModelConfig


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


def build(cfg: ModelConfig, num_classes: int, **variant: Any) -> VisionTransformer:
    return VisionTransformer(img_size=cfg.input_size, num_classes=num_classes,
                             **{**cfg.arch, **variant})
