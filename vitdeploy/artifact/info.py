"""What any runtime needs from an artifact directory besides its model file: the preprocessing
(from its deploy config), the labels and the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, VitdeployError
from ..models.config import PreprocessConfig
from .deploy_config import INFERENCE_YML, PADDLECLAS_DEPLOY_YAMLS, read_deploy_config
from .manifest import MANIFEST, read_manifest

LABELS = "labels.txt"


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
    manifest = read_manifest(d)
    expected = _manifest_size(manifest)
    cfg = None
    if model is not None:
        from ..models import get_config

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
