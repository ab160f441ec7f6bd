"""The LeViT layers in Paddle (see levit.py for the family): state-dict keys follow PaddleClas
``levit.py``; ``fold_for_export`` makes every attention bias one constant and folds BatchNorm."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn

from .config import ModelConfig
from .levit import stages


def _bn_scale_shift(bn: nn.Layer) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in eval mode as y = x * scale + shift."""
    scale = bn.weight.numpy() / np.sqrt(bn._variance.numpy() + bn._epsilon)
    return scale, bn.bias.numpy() - bn._mean.numpy() * scale


def _param(layer: nn.Layer, value: np.ndarray) -> paddle.Tensor:
    p = layer.create_parameter(list(value.shape), dtype="float32")
    p.set_value(value.astype("float32"))
    return p


class ConvBN(nn.Layer):
    def __init__(self, cin: int, cout: int, ks: int, stride: int, pad: int) -> None:
        super().__init__()
        self.c = nn.Conv2D(cin, cout, ks, stride, pad, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.folded: nn.Conv2D | None = None

    def fold_for_export(self) -> None:
        scale, shift = _bn_scale_shift(self.bn)
        c = self.c
        conv = nn.Conv2D(c._in_channels, c._out_channels, c._kernel_size, c._stride, c._padding)
        conv.weight.set_value(c.weight.numpy() * scale[:, None, None, None])
        conv.bias.set_value(shift.astype("float32"))
        self.folded = conv

    def forward(self, x):
        return self.folded(x) if self.folded is not None else self.bn(self.c(x))


class LinearBN(nn.Layer):
    """Linear without bias, then BatchNorm1D over the flattened tokens."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.c = nn.Linear(cin, cout, bias_attr=False)
        self.bn = nn.BatchNorm1D(cout)
        self.folded: nn.Linear | None = None

    def fold_for_export(self) -> None:
        scale, shift = _bn_scale_shift(self.bn)
        lin = nn.Linear(self.c.weight.shape[0], self.c.weight.shape[1])
        lin.weight.set_value(self.c.weight.numpy() * scale[None, :])
        lin.bias.set_value(shift.astype("float32"))
        self.folded = lin

    def forward(self, x):
        if self.folded is not None:
            return self.folded(x)
        n, c = x.shape[1], self.bn._variance.shape[0]
        return self.bn(self.c(x).reshape([-1, c])).reshape([-1, n, c])


class BNLinear(nn.Layer):
    """The classifier head: BatchNorm1D, then Linear."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1D(cin)
        self.l = nn.Linear(cin, cout)  # noqa: E741  (PaddleClas's key name)
        self.folded: nn.Linear | None = None

    def fold_for_export(self) -> None:
        scale, shift = _bn_scale_shift(self.bn)
        w, b = self.l.weight.numpy(), self.l.bias.numpy()
        lin = nn.Linear(w.shape[0], w.shape[1])
        lin.weight.set_value(w * scale[:, None])
        lin.bias.set_value((shift @ w + b).astype("float32"))
        self.folded = lin

    def forward(self, x):
        return self.folded(x) if self.folded is not None else self.l(self.bn(x))


def _bias_index(res_q: int, res_k: int, stride: int) -> np.ndarray:
    """PaddleClas/LeViT relative-offset indices: [res_q**2, res_k**2] int64."""
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in itertools.product(range(res_q), range(res_q)):
        for p2 in itertools.product(range(res_k), range(res_k)):
            off = (abs(p1[0] * stride - p2[0]), abs(p1[1] * stride - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    return np.asarray(idxs, dtype="int64").reshape(res_q * res_q, res_k * res_k)


class _BiasedAttention(nn.Layer):
    """Shared bias handling: gathered per call in eager mode, a constant after folding."""

    def _init_bias(self, num_heads: int, idxs: np.ndarray) -> None:
        n_offsets = int(idxs.max()) + 1
        self.attention_biases = self.create_parameter(
            [num_heads, n_offsets], default_initializer=nn.initializer.Constant(0.0))
        self.register_buffer("attention_bias_idxs", paddle.to_tensor(idxs))
        self.bias_table: paddle.Tensor | None = None

    def fold_for_export(self) -> None:
        table = self.attention_biases.numpy()[:, self.attention_bias_idxs.numpy()]
        self.bias_table = _param(self, table)

    def _bias(self):
        if self.bias_table is not None:
            return self.bias_table
        idx = self.attention_bias_idxs
        flat = paddle.gather(self.attention_biases, idx.flatten(), axis=1)
        return flat.reshape([self.attention_biases.shape[0], idx.shape[0], idx.shape[1]])


class Attention(_BiasedAttention):
    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: int, res: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        self.d = attn_ratio * key_dim
        self.dh = self.d * num_heads
        self.h = self.dh + key_dim * num_heads * 2
        self.qkv = LinearBN(dim, self.h)
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(self.dh, dim))
        self._init_bias(num_heads, _bias_index(res, res, 1))

    def forward(self, x):
        n = x.shape[1]
        qkv = self.qkv(x).reshape([-1, n, self.num_heads, self.h // self.num_heads])
        q, k, v = paddle.split(qkv, [self.key_dim, self.key_dim, self.d], axis=3)
        q, k, v = (t.transpose([0, 2, 1, 3]) for t in (q, k, v))
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + self._bias()
        attn = nn.functional.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, n, self.dh])
        return self.proj(x)


class Subsample(nn.Layer):
    def __init__(self, stride: int, res: int) -> None:
        super().__init__()
        self.stride, self.res = stride, res

    def forward(self, x):
        c = x.shape[2]
        x = x.reshape([-1, self.res, self.res, c])[:, ::self.stride, ::self.stride]
        return x.reshape([-1, x.shape[1] * x.shape[2], c])


class AttentionSubsample(_BiasedAttention):
    def __init__(self, in_dim: int, out_dim: int, key_dim: int, num_heads: int,
                 attn_ratio: int, stride: int, res: int, res_: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.scale = key_dim ** -0.5
        self.d = attn_ratio * key_dim
        self.dh = self.d * num_heads
        self.res_2 = res_ * res_
        self.kv = LinearBN(in_dim, self.dh + key_dim * num_heads)
        self.q = nn.Sequential(Subsample(stride, res), LinearBN(in_dim, key_dim * num_heads))
        self.proj = nn.Sequential(nn.Hardswish(), LinearBN(self.dh, out_dim))
        self._init_bias(num_heads, _bias_index(res_, res, stride))

    def forward(self, x):
        n = x.shape[1]
        kv = self.kv(x).reshape([-1, n, self.num_heads, self.key_dim + self.d])
        k, v = paddle.split(kv, [self.key_dim, self.d], axis=3)
        k, v = k.transpose([0, 2, 1, 3]), v.transpose([0, 2, 1, 3])
        q = self.q(x).reshape([-1, self.res_2, self.num_heads, self.key_dim]).transpose([0, 2, 1, 3])
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + self._bias()
        attn = nn.functional.softmax(attn, axis=-1)
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, self.res_2, self.dh])
        return self.proj(x)


class Residual(nn.Layer):
    def __init__(self, m: nn.Layer) -> None:
        super().__init__()
        self.m = m

    def forward(self, x):
        return x + self.m(x)


def _mlp(dim: int, ratio: int) -> Residual:
    h = dim * ratio
    return Residual(nn.Sequential(LinearBN(dim, h), nn.Hardswish(), LinearBN(h, dim)))


class LeViT(nn.Layer):
    def __init__(self, img_size: int = 224, num_classes: int = 1000, embed_dim=(128, 256, 384),
                 key_dim: int = 16, num_heads=(4, 6, 8), depth=(2, 3, 4),
                 distillation: bool = False) -> None:
        super().__init__()
        c = embed_dim[0]
        self.distillation = distillation
        self.patch_embed = nn.Sequential(
            ConvBN(3, c // 8, 3, 2, 1), nn.Hardswish(), ConvBN(c // 8, c // 4, 3, 2, 1),
            nn.Hardswish(), ConvBN(c // 4, c // 2, 3, 2, 1), nn.Hardswish(),
            ConvBN(c // 2, c, 3, 2, 1))
        blocks: list[nn.Layer] = []
        for kind, kw in stages(list(embed_dim), key_dim, list(num_heads), list(depth), img_size):
            if kind == "attn":
                blocks.append(Residual(Attention(**kw)))
            elif kind == "mlp":
                blocks.append(_mlp(**kw))
            else:
                blocks.append(AttentionSubsample(**kw))
        self.blocks = nn.Sequential(*blocks)
        self.head = BNLinear(embed_dim[-1], num_classes)
        if distillation:
            self.head_dist = BNLinear(embed_dim[-1], num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose([0, 2, 1])
        x = self.blocks(x).mean(1)
        if self.distillation:
            return (self.head(x) + self.head_dist(x)) / 2
        return self.head(x)


def build(cfg: ModelConfig, num_classes: int, **variant: Any) -> LeViT:
    return LeViT(img_size=cfg.input_size, num_classes=num_classes, **{**cfg.arch, **variant})
