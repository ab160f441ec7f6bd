"""What a conversion starts from: an export directory (ours or PaddleClas's) or an ONNX artifact."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import (
    INFERENCE_YML,
    LABELS,
    inference_yml,
    read_artifact_info,
    read_labels,
    verify_artifact,
    write_inference_yml,
    write_labels,
)
from ..errors import ArtifactError
from ..runtimes.onnxruntime import find_onnx
from ..runtimes.paddle import PaddleRuntime


@dataclass
class Source:
    directory: Path
    kind: str  # "paddle" or "onnx"
    model_file: Path
    manifest: dict
    model_name: str | None  # architecture, when known
    zoo_model: str | None  # --model given for a directory without inference.yml
    labels_file: Path | None

    @property
    def params_file(self) -> Path:
        return self.model_file.with_suffix(".pdiparams")

    def write_metadata(self, dest: Path, num_classes: int) -> None:
        """Copy (or, for a bare PaddleClas directory, create) inference.yml and labels.txt."""
        if self.zoo_model is None:
            shutil.copyfile(self.directory / INFERENCE_YML, dest / INFERENCE_YML)
            src_labels = self.directory / LABELS
            if src_labels.is_file():
                shutil.copyfile(src_labels, dest / LABELS)
            else:
                write_labels(dest / LABELS, [f"class_{i}" for i in range(num_classes)])
            return
        from ..models import get_config

        cfg = get_config(self.zoo_model)
        labels = (read_labels(self.labels_file, num_classes) if self.labels_file
                  else [f"class_{i}" for i in range(num_classes)])
        write_inference_yml(dest / INFERENCE_YML,
                            inference_yml(cfg.name, cfg.preprocess, num_classes, softmax=False))
        write_labels(dest / LABELS, labels)


def resolve_source(src: str | Path, model: str | None = None,
                   labels: str | Path | None = None, verify: bool = True) -> Source:
    d = Path(src)
    if not d.is_dir():
        raise ArtifactError(f"source directory not found: {d}")
    if verify:
        verify_artifact(d)
    program = PaddleRuntime.find_model(d)
    onnx_file = find_onnx(d)
    if program is not None:
        kind, model_file = "paddle", program
        if not model_file.with_suffix(".pdiparams").is_file():
            raise ArtifactError(f"{d} has {model_file.name} but no inference.pdiparams beside it")
    elif onnx_file is not None:
        kind, model_file = "onnx", onnx_file
    else:
        raise ArtifactError(
            f"{d} holds no Paddle inference model (inference.json or inference.pdmodel + "
            "inference.pdiparams) and no .onnx file; export one with 'vitdeploy export'"
        )
    has_yml = (d / INFERENCE_YML).is_file()
    if not has_yml and model is None:
        raise ArtifactError(
            f"{d} has no {INFERENCE_YML} to record its preprocessing; pass --model NAME "
            "(e.g. --model DeiT_base_patch16_224) to use that architecture's PaddleClas transforms"
        )
    manifest, name = {}, model
    if has_yml and model is None:
        info = read_artifact_info(d)  # validates inference.yml now, not after a long conversion
        manifest = info.manifest
        name = manifest.get("model")
    elif model is not None:
        from ..models import get_config

        name = get_config(model).name
    return Source(d, kind, model_file, manifest, name, None if has_yml and model is None else name,
                  Path(labels) if labels else None)
