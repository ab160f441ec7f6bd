"""Image preprocessing shared by every runtime; reproduces PaddleClas's Infer transforms.

DecodeImage (OpenCV, BGR -> RGB) -> ResizeImage(resize_short, cv2 or PIL backend)
-> CropImage (centre) -> NormalizeImage (x * scale - mean) / std in float32 -> CHW.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from .errors import ImageError, VitdeployError, first_line
from .models.config import PreprocessConfig
from .quiet import quiet_stderr

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
FORMATS_HINT = "JPEG, PNG, BMP, WebP, TIFF or GIF expected"
# Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS, about 13400 x 13400): far above any
# classifier input, and at most ~0.5 GB once decoded to 8-bit RGB.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
MAX_PIXELS_ENV = "VITDEPLOY_MAX_IMAGE_PIXELS"
BAD_IMAGE_POLICIES = ("skip", "stop")
Skipped = list[tuple[str, str]]  # (image, one-line reason)


def max_image_pixels(limit: int | None = None) -> int:
    """The pixel limit in force: ``limit``, else $VITDEPLOY_MAX_IMAGE_PIXELS, else the default."""
    source, raw = ("the pixel limit", limit) if limit is not None else (
        MAX_PIXELS_ENV, os.environ.get(MAX_PIXELS_ENV, "").strip() or None)
    if raw is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise VitdeployError(f"{source} must be a positive integer, got {raw!r}")
    return value


def _limit_or_default() -> int:
    try:
        return max_image_pixels()
    except VitdeployError:  # reported by the first decode, not at import
        return DEFAULT_MAX_IMAGE_PIXELS


# OpenCV reads its own limit (2**30 pixels by default) once, when cv2 loads: make it ours, so no
# OpenCV decode can allocate beyond it even where OpenCV reads a header differently from Pillow.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_limit_or_default()))


def _open_regular(p: Path) -> BinaryIO:
    """A regular file (or a link to one) opened for reading; anything else is refused unopened."""
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            raise ImageError(f"{p} is not a regular file")
        # O_NONBLOCK: should a FIFO replace the file after the stat, opening it must not wait
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ImageError(f"cannot read image {p}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageError(f"{p} is not a regular file")
    return os.fdopen(fd, "rb")


def _identify(f: BinaryIO, p: str) -> ImageFile | None:
    """Pillow's lazy image (header parsed, no pixels) from the first plugin that accepts the file.

    What ``Image.open`` does, minus its own size check, which refuses without telling the size."""
    from PIL import Image

    Image.init()
    prefix = f.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:  # some plugins' checks unpack fixed-size fields: a short file is not theirs
            ok = accept(prefix) if accept else True
        except Exception:
            continue
        if not ok or isinstance(ok, str):
            continue
        f.seek(0)
        try:
            return factory(f, p)
        except Exception:  # this plugin could not parse the header: try the next, as Image.open does
            continue
    return None


# OpenCV's log prefix ("[ WARN:0@0.007] global grfmt_png.cpp:793 readFromStreamOrBuffer ") and
# libpng's ("libpng error: "): our line quotes the message, not the noise around it.
_NATIVE_PREFIX = re.compile(r"^(?:\[\s*\w+:[^\]]*\]\s*(?:global\s+)?(?:\S+:\d+\s+\S+\s+)?"
                            r"|libpng (?:error|warning):\s*)")


def _native_message(text: str) -> str:
    """The most telling line a decoder printed (the last error line, else the last line)."""
    # a line with an escape sequence is a terminal spinner's redraw, not a decoder's message
    lines = [raw for raw in text.splitlines() if raw.strip() and "\x1b" not in raw]
    errors = [raw for raw in lines if "error" in raw.lower()]
    return _NATIVE_PREFIX.sub("", (errors or lines or [""])[-1]).strip()[:200]


def decode_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """HWC uint8 RGB. OpenCV like PaddleClas (grey, CMYK, 16-bit all become 8-bit 3-channel;
    alpha is dropped); Pillow only for what OpenCV cannot read (e.g. GIF).

    Only regular files are opened, and the size is read from the header first: no decoder sees an
    image above ``max_image_pixels(max_pixels)``. What the native decoders print on stderr is
    captured, and quoted in the ImageError when the image cannot be decoded.
    """
    p = Path(path)
    with _open_regular(p) as f:
        return _decode(f, os.fstat(f.fileno()).st_size, str(p), max_pixels)


def decode_image_bytes(data: bytes, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """``decode_image`` for an encoded image already in memory (an upload, a request body), with
    the same limits and messages; ``name`` stands for the path in them."""
    return _decode(io.BytesIO(data), len(data), name, max_pixels)


def _decode(f: BinaryIO, size: int, p: str, max_pixels: int | None) -> np.ndarray:
    import cv2

    limit = max_image_pixels(max_pixels)
    genuine = "raise --max-image-pixels if it is genuine"
    # an image within the limit takes at most 8 bytes a pixel (16-bit RGBA, uncompressed):
    # a bigger file is not read into memory whole (64 MiB is always allowed, for metadata)
    byte_limit = max(8 * limit, 1 << 26)
    if size > byte_limit:
        raise ImageError(f"image too large: {p} is {size} bytes (limit {byte_limit} for "
                         f"{limit} pixels); {genuine}")
    if size == 0:
        raise ImageError(f"{p} is not a decodable image (an empty file; {FORMATS_HINT})")
    try:
        with warnings.catch_warnings(record=True) as told:  # Pillow warns on corrupt headers
            warnings.simplefilter("always")
            head = _identify(f, p)
        if head is None:
            said = f"{' '.join(str(told[-1].message).split()).rstrip('. ')}; " if told else ""
            raise ImageError(f"{p} is not a decodable image ({said}{FORMATS_HINT})")
        w, h = head.size
        if w * h > limit:
            raise ImageError(f"image too large: {p} is {w}x{h} ({w * h} pixels, limit {limit}); "
                             f"{genuine}")
        f.seek(0)
        data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:  # an I/O error: a failing disk, a file truncated meanwhile
        raise ImageError(f"cannot read image {p}: {e.strerror or e}") from None
    with quiet_stderr() as native:
        try:
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        except cv2.error:  # e.g. above OpenCV's own limit: Pillow may still read it
            img = None
        if img is not None:
            return np.ascontiguousarray(img[:, :, ::-1])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the failure below says what went wrong
                return np.asarray(head.convert("RGB"))
        except Exception as e:
            failure = first_line(e)
    reason = _native_message(native.text) or failure
    raise ImageError(f"{p} is not a decodable image ({head.format}: {reason})")


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
    """HWC uint8 -> CHW float32 (or a batch, NHWC -> NCHW), with PaddleClas's float32
    arithmetic order: element by element, so a batch gives each image's own bits."""
    mean = np.array(cfg.mean, dtype=np.float32)
    std = np.array(cfg.std, dtype=np.float32)
    out = (img.astype(np.float32) * np.float32(cfg.scale) - mean) / std
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))


def crop_array(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Resized and center-cropped, still HWC uint8: a quarter of the bytes of the model's input
    (what bulk inference moves between processes; ``normalize`` finishes it)."""
    img = resize_short(img, cfg.resize_short, cfg.interpolation, cfg.backend)
    return center_crop(img, cfg.crop_size)


def preprocess_array(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    return normalize(crop_array(img, cfg), cfg)


def crop_image(path: str | Path, cfg: PreprocessConfig, max_pixels: int | None = None) -> np.ndarray:
    """One image file -> its HWC uint8 crop (see ``crop_array``)."""
    return crop_array(decode_image(path, max_pixels), cfg)


def preprocess_image(path: str | Path, cfg: PreprocessConfig,
                     max_pixels: int | None = None) -> np.ndarray:
    """One image file -> CHW float32 tensor ready for the model."""
    return normalize(crop_image(path, cfg, max_pixels), cfg)


def preprocess_batch(paths: Iterable[str | Path], cfg: PreprocessConfig,
                     max_pixels: int | None = None) -> np.ndarray:
    """Image files -> one NCHW float32 batch; the first bad image raises."""
    return np.stack([preprocess_image(p, cfg, max_pixels) for p in paths])


def check_policy(on_bad_image: str) -> str:
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise VitdeployError(f"unknown --bad-images {on_bad_image!r}; "
                             f"choose one of: {', '.join(BAD_IMAGE_POLICIES)}")
    return on_bad_image


def preprocess_usable(paths: Sequence[str | Path], cfg: PreprocessConfig, *,
                      on_bad_image: str = "skip", max_pixels: int | None = None,
                      ) -> tuple[np.ndarray, list[int], Skipped]:
    """(NCHW batch, index into ``paths`` of each of its rows, skipped images with the reason).

    ``on_bad_image="skip"`` leaves out an image that raises ImageError; ``"stop"`` raises it."""
    check_policy(on_bad_image)
    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped: Skipped = []
    for i, p in enumerate(paths):
        try:
            rows.append(preprocess_image(p, cfg, max_pixels))
        except ImageError as e:
            if on_bad_image == "stop":
                raise
            skipped.append((str(p), str(e)))
            continue
        kept.append(i)
    size = cfg.crop_size
    batch = np.stack(rows) if rows else np.empty((0, 3, size, size), dtype=np.float32)
    return batch, kept, skipped


def no_usable_images(skipped: Skipped) -> ImageError:
    """The error when every image was skipped: a lone image's own reason, else a count."""
    if len(skipped) == 1:
        return ImageError(skipped[0][1])
    first = f" (first: {skipped[0][1]})" if skipped else ""
    return ImageError(f"no usable images: all {len(skipped)} were skipped{first}")


def skipped_records(skipped: Skipped) -> list[dict[str, str]]:
    """Skipped images for JSON output."""
    return [{"image": image, "reason": reason} for image, reason in skipped]


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) into image files; files are kept as given.

    Inside a directory only regular files (or links to them) count: a FIFO, socket, device or a
    sub-directory named like an image is ignored, never opened. A named path must be a regular file.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise ImageError(f"no images found in directory {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise ImageError(f"{p} is not a regular file")
        else:
            raise ImageError(f"image not found: {p}")
    return out


def spread_evenly(n: int, count: int) -> list[int]:
    """Indices of ``count`` of ``n`` sorted items, spread evenly and deterministically (every
    class of a per-class folder gets a say): all of them when ``count >= n``. The one picker of
    calibration images, sensitivity subsets and bundle self-check images."""
    if count >= n:
        return list(range(n))
    return list(dict.fromkeys(i * n // count for i in range(count)))
