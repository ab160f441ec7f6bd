"""LeViT: convolutional stem, attention with learned relative-position biases, BN everywhere.

State-dict keys follow PaddleClas ``levit.py`` (including the int64 ``attention_bias_idxs``
buffers and the optional ``head_dist`` head, averaged when present). For export,
``fold_for_export`` turns every attention bias table into one constant tensor (PaddleClas's
version gathers it row by row: hundreds of gather/slice ops) and folds every BatchNorm into
its neighbouring Linear/Conv, leaving a graph of plain matmuls.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig, PreprocessConfig
from .family import Family


def stages(embed_dim: list[int], key_dim: int, num_heads: list[int], depth: list[int],
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
    for kind, kw in stages(list(a["embed_dim"]), a["key_dim"], list(a["num_heads"]),
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



# PaddleClas Infer transforms for LeViT (ppcls/configs/ImageNet/LeViT/*.yaml): ResizeImage
# names no interpolation/backend, so PaddleClas's default applies (OpenCV, bilinear).
_PRE = PreprocessConfig(resize_short=256, crop_size=224, interpolation="bilinear", backend="cv2")
_MODELS = tuple(
    ModelConfig(name=_name, family="levit", input_size=224, preprocess=_PRE,
                arch=dict(embed_dim=_c, key_dim=_d, num_heads=_n, depth=_x))
    for _name, _c, _d, _n, _x in (
    ("LeViT_128S", (128, 256, 384), 16, (4, 6, 8), (2, 3, 4)),
    ("LeViT_128", (128, 256, 384), 16, (4, 8, 12), (4, 4, 4)),
    ("LeViT_192", (192, 288, 384), 32, (3, 5, 6), (4, 4, 4)),
    ("LeViT_256", (256, 384, 512), 32, (4, 6, 8), (4, 4, 4)),
    ("LeViT_384", (384, 512, 768), 32, (6, 9, 12), (4, 4, 4)),
    )
)

FAMILY = Family("levit", _MODELS, _variant, _num_classes, _macs, layers="levit_layers:build")
