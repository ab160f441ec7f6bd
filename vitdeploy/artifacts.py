"""Artifact directories: atomic creation, manifest with checksums, inference.yml, labels."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from .deploy_config import parse_deploy_config, read_deploy_config
from .errors import ArtifactError, OutputExistsError, VitdeployError, first_line
from .models.config import PreprocessConfig

MANIFEST = "manifest.json"
INFERENCE_YML = "inference.yml"
DIGEST = "manifest_sha256"
LABELS = "labels.txt"
# PaddleClas's deploy config (deploy/configs/inference_cls.yaml), read when there is no inference.yml.
PADDLECLAS_DEPLOY_YAMLS = ("inference_cls.yaml", "inference_cls.yml")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_output_dir(out: str | Path, force: bool = False,
                     inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output that is a file, a non-empty directory without --force, or one that is
    (or holds) an input: replacing it would destroy what we read. Call this before long work,
    so the user hears it at once."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} is a file, not a directory; choose another --out")
    real_out = out.resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).absolute()
        if _within(src.resolve(), real_out) or _within(src, out):
            raise OutputExistsError(f"--out {out} holds the input {given}; replacing it would "
                                    "destroy that input, so choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output directory {out} is not empty; pass --force to replace it")
    return out


@contextlib.contextmanager
def atomic_file(out: Path, *, text: bool = False, force: bool = True,
                flag: str = "--out") -> Iterator[IO]:
    """A temp file beside ``out``, fsynced and moved onto it (os.replace) only when the block
    succeeds; on any failure (KeyboardInterrupt included) it vanishes: nothing half-written.
    ``force=False`` refuses an ``out`` that appeared while the block ran."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    except OSError as e:
        raise VitdeployError(f"cannot write to {out.parent}: {e.strerror}; choose another {flag}") \
            from None
    try:
        with os.fdopen(fd, "w" if text else "w+b", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        if out.exists() and not force:
            raise OutputExistsError(f"{out} exists; pass --force to replace it")
        os.replace(tmp, out)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise VitdeployError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, force: bool = False,
                      inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Yield a temp dir beside ``out``; on success it replaces ``out``, on any failure it vanishes."""
    out = check_output_dir(out, force, inputs)
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


def _digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_manifest(directory: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write manifest.json: ``info`` plus ``files`` (relative path -> sha256) for every file, and
    a digest of the manifest itself, so an edited hash is caught too (tamper-evident against
    edits and corruption; not a signature against someone who rewrites the digest as well)."""
    files = {
        p.relative_to(directory).as_posix(): sha256(p)
        for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    manifest = {**info, "files": files}
    manifest[DIGEST] = _digest(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def verify_artifact(directory: str | Path) -> dict[str, Any] | None:
    """Check every file an artifact's manifest lists against its sha256 (and the manifest's own
    digest). Returns the manifest, or None for a directory without one (a PaddleClas export)."""
    d = Path(directory)
    path = d / MANIFEST
    if not path.is_file():
        return None
    fix = "re-create the artifact, or pass --no-verify if you edited it on purpose"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON ({first_line(e)}); {fix}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ArtifactError(f"{path} has no 'files' table of sha256 digests; {fix}")
    if manifest.get(DIGEST) != _digest(manifest):
        what = "has no digest (written by an older vitdeploy?)" if DIGEST not in manifest \
            else "was edited: its digest does not match its content"
        raise ArtifactError(f"{path} {what}; {fix}")
    root = d.resolve()
    for rel, digest in sorted(files.items()):
        f = (d / rel)
        if not _within(f.resolve(), root) or rel.startswith("/"):
            raise ArtifactError(f"{path} lists {rel!r}, outside {d}; {fix}")
        if not f.is_file():
            raise ArtifactError(f"{d} is incomplete: {rel} (listed in {MANIFEST}) is missing; {fix}")
        if sha256(f) != digest:
            raise ArtifactError(f"{f} does not match its sha256 in {MANIFEST} (corrupted or "
                                f"modified); {fix}")
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
    config_file: Path | None = None  # the deploy yaml read; None when --model supplied the preprocessing


def _parse_preprocess(cfg: dict, where: Path) -> PreprocessConfig:
    return parse_deploy_config(cfg, where).preprocess


def _read_manifest(d: Path) -> dict[str, Any]:
    if not (d / MANIFEST).is_file():
        return {}
    try:
        manifest = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{d / MANIFEST} is not valid JSON: {first_line(e)}") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{d / MANIFEST} is not a JSON object")
    return manifest


def _manifest_size(manifest: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The (H, W) the exported program takes, when the manifest records a static one."""
    inp = manifest.get("input")
    shape = inp.get("shape") if isinstance(inp, dict) else None
    if (isinstance(shape, list) and len(shape) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape[2:])):
        return {f"{MANIFEST} input.shape is {json.dumps(shape).replace('null', 'None')}":
                (shape[2], shape[3])}
    return {}


def read_artifact_info(directory: str | Path, model: str | None = None) -> ArtifactInfo:
    """The preprocessing comes from ``inference.yml``, else PaddleClas's deploy yaml, else the
    registered config of ``model`` (a bare PaddleClas inference export). With ``model`` and a
    yaml, the yaml's crop must match that model's input size."""
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"artifact directory not found: {d}")
    manifest = _read_manifest(d)
    expected = _manifest_size(manifest)
    cfg = None
    if model is not None:
        from .models.registry import get_config

        cfg = get_config(model)
        expected[f"model {cfg.name} takes {cfg.input_size}x{cfg.input_size} inputs"] = (
            cfg.input_size, cfg.input_size)
    yml = next((p for p in (d / n for n in (INFERENCE_YML, *PADDLECLAS_DEPLOY_YAMLS)) if p.is_file()),
               None)
    if yml is None:
        if cfg is None:
            raise ArtifactError(
                f"{d} has no {INFERENCE_YML}; it records the preprocessing (export with "
                "'vitdeploy export', copy the inference.yml PaddleClas wrote beside the model, or "
                "pass --model NAME to use that architecture's PaddleClas transforms)"
            )
        for desc, hw in _manifest_size(manifest).items():
            if hw != (cfg.input_size, cfg.input_size):
                raise ArtifactError(f"{d}: model {cfg.name} takes {cfg.input_size}x{cfg.input_size} "
                                    f"inputs but {desc}; pass the --model the artifact was made from")
        labels = read_labels(d / LABELS) if (d / LABELS).is_file() else []
        return ArtifactInfo(d, cfg.preprocess, labels, None, False, manifest)
    paddleclas_deploy = yml.name != INFERENCE_YML
    dc = read_deploy_config(yml, expected=expected, paddleclas_deploy=paddleclas_deploy)
    # PaddleClas's own config names a label file in PaddleClas's tree: fall back to ours, if any.
    labels_file = d / (dc.class_id_map_file or LABELS)
    if paddleclas_deploy and not labels_file.is_file():
        labels_file = d / LABELS
    labels = read_labels(labels_file) if labels_file.is_file() else []
    if labels and dc.num_classes is not None and len(labels) != dc.num_classes:
        raise ArtifactError(f"{labels_file} has {len(labels)} labels but {yml} says "
                            f"Global.num_classes is {dc.num_classes}")
    return ArtifactInfo(d, dc.preprocess, labels, dc.num_classes, dc.softmax, manifest, yml)
