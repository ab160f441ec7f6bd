"""Image preprocessing shared by every runtime; reproduces PaddleClas's Infer transforms.

DecodeImage (OpenCV, BGR -> RGB) -> ResizeImage(resize_short, cv2 or PIL backend)
-> CropImage (centre) -> NormalizeImage (x * scale - mean) / std in float32 -> CHW.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import ImageError
from .models.config import PreprocessConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def decode_image(path: str | Path) -> np.ndarray:
    """HWC uint8 RGB. OpenCV like PaddleClas (grey, CMYK, 16-bit all become 8-bit 3-channel;
    alpha is dropped); Pillow only for what OpenCV cannot read (e.g. GIF)."""
    import cv2

    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"cannot read image {p}: {e.strerror}") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is not None:
        return np.ascontiguousarray(img[:, :, ::-1])
    try:
        from PIL import Image

        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except Exception:
        raise ImageError(
            f"{p} is not a decodable image (JPEG, PNG, BMP, WebP, TIFF or GIF expected)"
        ) from None


_CV2_INTERP = {"nearest": 0, "bilinear": 1, "bicubic": 2, "area": 3, "lanczos": 4}
_PIL_INTERP = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def resize_short(img: np.ndarray, short: int, interpolation: str, backend: str) -> np.ndarray:
    h, w = img.shape[:2]
    percent = float(short) / min(w, h)
    size = (int(round(w * percent)), int(round(h * percent)))
    interp = interpolation.lower()
    if backend.lower() == "pil":
        from PIL import Image

        if interp not in _PIL_INTERP:
            raise ImageError(f"unknown PIL interpolation {interpolation!r}; use one of {sorted(_PIL_INTERP)}")
        return np.asarray(Image.fromarray(img).resize(size, _PIL_INTERP[interp]))
    import cv2

    if interp not in _CV2_INTERP:
        raise ImageError(f"unknown cv2 interpolation {interpolation!r}; use one of {sorted(_CV2_INTERP)}")
    return cv2.resize(img, size, interpolation=_CV2_INTERP[interp])


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ImageError(f"image of {w}x{h} is smaller than the crop size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size, :]


def normalize(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """HWC uint8 -> CHW float32, with PaddleClas's float32 arithmetic order."""
    mean = np.array(cfg.mean, dtype=np.float32).reshape(1, 1, 3)
    std = np.array(cfg.std, dtype=np.float32).reshape(1, 1, 3)
    out = (img.astype(np.float32) * np.float32(cfg.scale) - mean) / std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def preprocess_array(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    img = resize_short(img, cfg.resize_short, cfg.interpolation, cfg.backend)
    return normalize(center_crop(img, cfg.crop_size), cfg)


def preprocess_image(path: str | Path, cfg: PreprocessConfig) -> np.ndarray:
    """One image file -> CHW float32 tensor ready for the model."""
    return preprocess_array(decode_image(path), cfg)


def preprocess_batch(paths: Iterable[str | Path], cfg: PreprocessConfig) -> np.ndarray:
    """Image files -> one NCHW float32 batch."""
    return np.stack([preprocess_image(p, cfg) for p in paths])


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) into image files; files are kept as given."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"no images found in directory {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ImageError(f"image not found: {p}")
    return out
