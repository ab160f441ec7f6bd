"""What a conversion starts from: an export directory (ours or PaddleClas's) or an ONNX artifact."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..artifact import (
    INFERENCE_YML,
    LABELS,
    PADDLE_PARAMS,
    ArtifactInfo,
    artifact_kind,
    find_onnx,
    find_paddle_program,
    inference_yml,
    read_artifact_info,
    read_labels,
    verify_artifact,
    write_inference_yml,
    write_labels,
)
from ..errors import ArtifactError


@dataclass
class Source:
    directory: Path
    kind: str  # "paddle" or "onnx"
    model_file: Path
    manifest: dict
    model_name: str | None  # architecture, when known
    info: ArtifactInfo  # preprocessing and labels, from whichever config the directory has
    labels_file: Path | None

    @property
    def params_file(self) -> Path:
        return self.model_file.with_suffix(".pdiparams")

    def write_metadata(self, dest: Path, num_classes: int) -> None:
        """Copy our inference.yml, or write one (PaddleClas's inference_cls.yaml, or --model's
        preprocessing) so the artifact is self-describing; labels likewise."""
        own = self.directory / INFERENCE_YML
        if own.is_file() and self.info.config_file == own:
            shutil.copyfile(own, dest / INFERENCE_YML)
        else:
            write_inference_yml(dest / INFERENCE_YML, inference_yml(
                self.model_name or "unknown", self.info.preprocess, num_classes,
                softmax=self.info.softmax))
        if self.labels_file:
            labels = read_labels(self.labels_file, num_classes)
        elif self.info.labels and len(self.info.labels) == num_classes:
            labels = self.info.labels
        else:
            labels = [f"class_{i}" for i in range(num_classes)]
        write_labels(dest / LABELS, labels)


def resolve_source(src: str | Path, model: str | None = None,
                   labels: str | Path | None = None, verify: bool = True) -> Source:
    d = Path(src)
    if not d.is_dir():
        raise ArtifactError(f"source directory not found: {d}")
    if verify:
        verify_artifact(d)
    kind = artifact_kind(d)  # from the files: a conversion reads the model, not the manifest
    program, onnx_file = find_paddle_program(d), find_onnx(d)
    if kind == "paddle" and program is not None:
        model_file = program
        if not model_file.with_suffix(PADDLE_PARAMS).is_file():
            raise ArtifactError(f"{d} has {model_file.name} but no inference.pdiparams beside it")
    elif onnx_file is not None:
        kind, model_file = "onnx", onnx_file
    else:
        raise ArtifactError(
            f"{d} holds no Paddle inference model (inference.json or inference.pdmodel + "
            "inference.pdiparams) and no .onnx file; export one with 'vitdeploy export'"
        )
    # validates the preprocessing config now, not after a long conversion
    info = read_artifact_info(d, model=model)
    if model is not None:
        from ..models import get_config

        name = get_config(model).name
    else:
        name = info.manifest.get("model")
    return Source(d, kind, model_file, info.manifest, name, info, Path(labels) if labels else None)
