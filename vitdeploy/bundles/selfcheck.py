"""A bundle's self-check data: the reference images, vitdeploy's preprocessing of them (the
reference inputs) and the reference model's outputs on those inputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..models.config import PreprocessConfig
from ..preprocess import collect_images, no_usable_images, preprocess_image, spread_evenly

# What the demo's OpenCV (cv::imread) decodes; Pillow-only formats (GIF) would fail on the device.
OPENCV_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def bundle_name(index: int, path: Path) -> str:
    """``000_<name>``; characters a shell or adb would need quoted become '_'."""
    return f"{index:03d}_{re.sub(r'[^A-Za-z0-9._-]', '_', path.name)}"


def _opencv_decodes(path: Path) -> bool:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR) is not None


def pick_images(images: str | Path, count: int, pre: PreprocessConfig
                ) -> tuple[list[Path], list[tuple[str, str]]]:
    """``count`` images under ``images``, spread evenly over the sorted list (a folder per class
    gives every class a say), that both OpenCV (the demo) and vitdeploy's preprocessing read;
    the others are skipped with the reason, and the next candidates taken instead."""
    kept: list[Path] = []
    skipped: list[tuple[str, str]] = []
    found = collect_images([images])
    spread = spread_evenly(len(found), count)
    for p in [found[i] for i in spread] + [f for i, f in enumerate(found) if i not in set(spread)]:
        if len(kept) == count:
            break
        if p.suffix.lower() not in OPENCV_SUFFIXES:
            skipped.append((str(p), f"{p.name}: the demo decodes with OpenCV, which cannot read "
                                    f"{p.suffix or 'this'} files"))
            continue
        try:
            preprocess_image(p, pre)
        except ImageError as e:
            skipped.append((str(p), str(e)))
            continue
        if not _opencv_decodes(p):
            skipped.append((str(p), f"{p}: OpenCV cannot decode it (the demo decodes with OpenCV)"))
            continue
        kept.append(p)
    if not kept:
        raise no_usable_images(skipped)
    return kept, skipped


def synthetic_images(out_dir: Path, count: int, pre: PreprocessConfig) -> list[Path]:
    """Seeded PNGs: gradients, discs and noise, larger than ``resize_short`` with odd sides (so
    the resize and the centre crop both have work and rounding to do), alternating landscape and
    portrait. Same count and preprocessing -> same bytes."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(1000 + i)
        long_side = pre.resize_short + pre.resize_short // 4 + 2 * i + 7
        short_side = pre.resize_short + pre.resize_short // 8 + 2 * (i % 3) + 3
        w, h = (long_side, short_side) if i % 2 == 0 else (short_side, long_side)
        w, h = w | 1, h | 1  # odd sides
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack([127 + 120 * np.sin(xx / w * (2 + i) * np.pi + phase[0]),
                        255 * yy / (h - 1),
                        127 + 120 * np.cos((xx + yy) / (w + h) * 3 * np.pi + phase[2])], axis=-1)
        for _ in range(3):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            radius = int(rng.integers(max(2, min(w, h) // 10), max(3, min(w, h) // 3)))
            colour = tuple(float(c) for c in rng.integers(0, 256, 3))
            cv2.circle(img, centre, radius, colour, thickness=-1)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        path = out_dir / f"synthetic_{i:02d}.png"
        ok, data = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))  # RGB -> BGR
        if not ok:
            raise ImageError(f"OpenCV could not encode the synthetic image {path.name}")
        path.write_bytes(data.tobytes())
        paths.append(path)
    return paths


def compute_reference(directory: Path, paths: list[Path], runtime: str
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(inputs, outputs, what computed them): vitdeploy's preprocessing, then the reference
    runtime at batch 1, through vitdeploy.check.reference (as 'vitdeploy reference' computes them).
    The caller has verified what it runs (the source artifact, or the export's model files)."""
    from ..check.reference import compute_reference as reference
    from ..precision import judged

    ref = reference(directory, paths, runtime=runtime, verify=False, on_bad_image="stop")
    m = ref.meta
    meta = {"runtime": m["runtime"],
            "precision": judged(m["artifact_precision"], m["compute_precision"])}
    if m.get("runtime_detail"):
        meta["detail"] = m["runtime_detail"]
    versions = m.get("versions", {})
    if m["runtime"] == "lite":  # paddlelite lives in the Lite toolchain's environment, not here
        from ..lite.env import PADDLELITE

        meta["paddlelite"] = versions.get("paddlelite") or PADDLELITE.split("==", 1)[1]
    elif versions.get("paddlepaddle"):
        meta["paddle"] = versions["paddlepaddle"]
    return ref.inputs.astype(np.float32), ref.outputs.astype(np.float32), meta
