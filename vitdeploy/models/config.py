"""Model configuration: what a runtime needs to know besides the graph."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PreprocessConfig:
    """PaddleClas Infer transforms: ResizeImage(resize_short) -> CropImage -> NormalizeImage."""

    resize_short: int
    crop_size: int
    interpolation: str = "bicubic"
    backend: str = "pil"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        keys = cls.__dataclass_fields__.keys()
        kw = {k: d[k] for k in keys if k in d}
        for k in ("mean", "std"):
            if k in kw:
                kw[k] = tuple(float(v) for v in kw[k])
        return cls(**kw)


@dataclass(frozen=True)
class ModelConfig:
    """One registered architecture: its family, hyper-parameters, input size and preprocessing."""

    name: str
    family: str
    input_size: int
    preprocess: PreprocessConfig
    arch: dict[str, Any] = field(default_factory=dict, compare=False)
    num_classes: int = 1000
    seed: bool = True  # one of the 20 seed-table models (False for our own sample models)
