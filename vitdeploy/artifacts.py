"""Artifact directories: atomic creation, manifest with checksums, inference.yml, labels."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ArtifactError, OutputExistsError, VitdeployError
from .models.config import PreprocessConfig

MANIFEST = "manifest.json"
INFERENCE_YML = "inference.yml"
LABELS = "labels.txt"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_output_dir(out: str | Path, force: bool = False) -> Path:
    """Refuse an output that is a file, or a non-empty directory without --force (call this
    before long work, so the user hears it at once)."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} is a file, not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output directory {out} is not empty; pass --force to replace it")
    return out


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temp dir beside ``out``; on success it replaces ``out``, on any failure it vanishes."""
    out = check_output_dir(out, force)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise VitdeployError(f"cannot write to {parent}: {e.strerror}; choose a writable --out") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            out.rename(trash / "old")
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:  # includes KeyboardInterrupt: leave nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write manifest.json: ``info`` plus ``files`` (relative path -> sha256) for every file."""
    files = {
        p.relative_to(directory).as_posix(): sha256(p)
        for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    manifest = {**info, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """One label per line; PaddleClas's ``<id> <label>`` class-id-map lines are accepted too."""
    p = Path(path)
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise VitdeployError(f"cannot read labels file {p}: {e}") from None
    if lines and all(ln.split(" ", 1)[0].isdigit() and " " in ln for ln in lines):
        pairs = sorted((int(ln.split(" ", 1)[0]), ln.split(" ", 1)[1].strip()) for ln in lines)
        if [i for i, _ in pairs] == list(range(len(pairs))):
            lines = [label for _, label in pairs]
    if num_classes is not None and len(lines) != num_classes:
        raise VitdeployError(
            f"labels file {p} has {len(lines)} labels but the model has {num_classes} classes"
        )
    return lines


def write_labels(path: Path, labels: list[str]) -> None:
    path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def inference_yml(model: str, pre: PreprocessConfig, num_classes: int, softmax: bool) -> dict:
    """PaddleClas's deploy config layout, so PaddleClas/PaddleX tooling can read it too."""
    return {
        "Global": {"model_name": model, "input_shape": [3, pre.crop_size, pre.crop_size],
                   "num_classes": num_classes, "softmax": softmax},
        "PreProcess": {"transform_ops": [
            {"ResizeImage": {"resize_short": pre.resize_short, "interpolation": pre.interpolation,
                             "backend": pre.backend}},
            {"CropImage": {"size": pre.crop_size}},
            {"NormalizeImage": {"scale": pre.scale, "mean": list(pre.mean), "std": list(pre.std),
                                "order": "hwc"}},
            {"ToCHWImage": None},
        ]},
        "PostProcess": {"name": "Topk", "topk": 5, "class_id_map_file": LABELS},
    }


def write_inference_yml(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


@dataclass
class ArtifactInfo:
    """What any runtime needs from an artifact directory besides its model file."""

    directory: Path
    preprocess: PreprocessConfig
    labels: list[str]
    num_classes: int | None
    softmax: bool
    manifest: dict[str, Any]


def _parse_preprocess(cfg: dict, where: Path) -> PreprocessConfig:
    ops = {}
    for op in (cfg.get("PreProcess") or {}).get("transform_ops") or []:
        if isinstance(op, dict):
            for name, args in op.items():
                ops[name] = args or {}
    try:
        resize, crop, norm = ops["ResizeImage"], ops["CropImage"], ops.get("NormalizeImage", {})
        crop_size = int(crop["size"] if not isinstance(crop["size"], list) else crop["size"][0])
        resize_short = int(resize.get("resize_short") or crop_size)
        scale = norm.get("scale", 1.0 / 255.0)
        if isinstance(scale, str):  # PaddleClas writes "1.0/255.0"
            num, _, den = scale.partition("/")
            scale = float(num) / float(den or 1)
        kw = dict(resize_short=resize_short, crop_size=crop_size,
                  interpolation=resize.get("interpolation") or "bilinear",
                  backend=resize.get("backend") or "cv2", scale=float(scale))
        if "mean" in norm:
            kw.update(mean=tuple(norm["mean"]), std=tuple(norm["std"]))
        return PreprocessConfig(**kw)
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(
            f"{where}: PreProcess.transform_ops needs ResizeImage and CropImage ({e!s})"
        ) from None


def read_artifact_info(directory: str | Path) -> ArtifactInfo:
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"artifact directory not found: {d}")
    yml = d / INFERENCE_YML
    if not yml.is_file():
        raise ArtifactError(
            f"{d} has no {INFERENCE_YML}; it records the preprocessing (export with "
            "'vitdeploy export', or copy the inference.yml PaddleClas wrote beside the model)"
        )
    try:
        cfg = yaml.safe_load(yml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ArtifactError(f"{yml} is not valid YAML: {e}") from None
    pre = _parse_preprocess(cfg, yml)
    glob = cfg.get("Global") or {}
    num_classes = glob.get("num_classes")
    labels_file = d / ((cfg.get("PostProcess") or {}).get("class_id_map_file") or LABELS)
    labels = read_labels(labels_file) if labels_file.is_file() else []
    manifest = {}
    if (d / MANIFEST).is_file():
        try:
            manifest = json.loads((d / MANIFEST).read_text())
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{d / MANIFEST} is not valid JSON: {e}") from None
    return ArtifactInfo(d, pre, labels, num_classes, bool(glob.get("softmax", False)), manifest)
