"""LeViT: convolutional stem, attention with learned relative-position biases, BN everywhere.

State-dict keys follow PaddleClas ``levit.py`` (including the int64 ``attention_bias_idxs``
buffers and the optional ``head_dist`` head, averaged when present). For export,
``fold_for_export`` turns every attention bias table into one constant tensor (PaddleClas's
version gathers it row by row: hundreds of gather/slice ops) and folds every BatchNorm into
its neighbouring Linear/Conv, leaving a graph of plain matmuls.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn

from .config import ModelConfig, PreprocessConfig
from .registry import Family, register, register_family


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


def _stages(embed_dim: list[int], key_dim: int, num_heads: list[int], depth: list[int],
            img_size: int):
    """Yield the block sequence as (kind, kwargs, tokens_in, tokens_out); shared by model and MACs."""
    res = img_size // 16
    for i, (ed, nh, dp) in enumerate(zip(embed_dim, num_heads, depth, strict=False)):
        for _ in range(dp):
            yield "attn", dict(dim=ed, key_dim=key_dim, num_heads=nh, attn_ratio=2, res=res)
            yield "mlp", dict(dim=ed, ratio=2)
        if i + 1 < len(embed_dim):
            res_ = (res - 1) // 2 + 1
            yield "sub", dict(in_dim=ed, out_dim=embed_dim[i + 1], key_dim=key_dim,
                              num_heads=ed // key_dim, attn_ratio=4, stride=2, res=res, res_=res_)
            res = res_
            yield "mlp", dict(dim=embed_dim[i + 1], ratio=2)


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
        for kind, kw in _stages(list(embed_dim), key_dim, list(num_heads), list(depth), img_size):
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


def _build(cfg: ModelConfig, num_classes: int, **variant: Any) -> LeViT:
    return LeViT(img_size=cfg.input_size, num_classes=num_classes, **{**cfg.arch, **variant})


def _variant(state_dict: dict[str, Any]) -> dict[str, Any]:
    return {"distillation": "head_dist.l.weight" in state_dict}


def _num_classes(state_dict: dict[str, Any]) -> int | None:
    w = state_dict.get("head.l.weight")
    return int(w.shape[1]) if w is not None and len(w.shape) == 2 else None


def _macs(cfg: ModelConfig) -> float:
    a = cfg.arch
    c = a["embed_dim"][0]
    chans = [3, c // 8, c // 4, c // 2, c]
    res, total, tokens = cfg.input_size, 0.0, 0
    for cin, cout in zip(chans, chans[1:], strict=False):
        res = (res + 1) // 2
        total += res * res * cin * cout * 9
    for kind, kw in _stages(list(a["embed_dim"]), a["key_dim"], list(a["num_heads"]),
                            list(a["depth"]), cfg.input_size):
        if kind == "mlp":  # tokens: those of the preceding attention block
            total += tokens * kw["dim"] * kw["dim"] * kw["ratio"] * 2
            continue
        kd, nh, d = kw["key_dim"], kw["num_heads"], kw["key_dim"] * kw["attn_ratio"]
        if kind == "attn":
            n = tokens = kw["res"] ** 2
            total += n * kw["dim"] * (d + 2 * kd) * nh + n * d * nh * kw["dim"]
            total += n * n * (kd + d) * nh
        else:
            n, tokens = kw["res"] ** 2, kw["res_"] ** 2
            total += n * kw["in_dim"] * (d + kd) * nh + tokens * kw["in_dim"] * kd * nh
            total += tokens * d * nh * kw["out_dim"] + tokens * n * (kd + d) * nh
    return total + a["embed_dim"][-1] * cfg.num_classes * 2


register_family(Family("levit", _build, _variant, _num_classes, _macs))

# PaddleClas Infer transforms for LeViT (ppcls/configs/ImageNet/LeViT/*.yaml): ResizeImage
# names no interpolation/backend, so PaddleClas's default applies (OpenCV, bilinear).
_PRE = PreprocessConfig(resize_short=256, crop_size=224, interpolation="bilinear", backend="cv2")
for _name, _c, _d, _n, _x in (
    ("LeViT_128S", (128, 256, 384), 16, (4, 6, 8), (2, 3, 4)),
    ("LeViT_128", (128, 256, 384), 16, (4, 8, 12), (4, 4, 4)),
    ("LeViT_192", (192, 288, 384), 32, (3, 5, 6), (4, 4, 4)),
    ("LeViT_256", (256, 384, 512), 32, (4, 6, 8), (4, 4, 4)),
    ("LeViT_384", (384, 512, 768), 32, (6, 9, 12), (4, 4, 4)),
):
    register(ModelConfig(name=_name, family="levit", input_size=224, preprocess=_PRE,
                         arch=dict(embed_dim=_c, key_dim=_d, num_heads=_n, depth=_x)))
