"""The artifact: one owner for what an artifact directory is on disk.

- ``files``: sha256, output directories checked before long work, atomic writes
- ``manifest``: ``manifest.json`` (each file's sha256, the manifest's own digest): write, read, verify
- ``kind``: which format a directory holds and where its model file is
- ``deploy_config``: ``inference.yml`` (PaddleClas's deploy config layout): write, read, validate
- ``info``: ``ArtifactInfo`` (preprocessing, labels, manifest) for runtimes and workflows

Everyone else imports from here (formats layer: it imports only models and preprocess)."""

from __future__ import annotations

from .deploy_config import (
    INFERENCE_YML,
    PADDLECLAS_DEPLOY_YAMLS,
    DeployConfig,
    inference_yml,
    parse_deploy_config,
    read_deploy_config,
    write_inference_yml,
)
from .files import atomic_file, atomic_output_dir, check_output_dir, sha256, within
from .info import LABELS, ArtifactInfo, read_artifact_info, read_labels, write_labels
from .kind import (
    KINDS,
    NB,
    NB_TWIN,
    PADDLE_PARAMS,
    artifact_kind,
    find_ir,
    find_nb,
    find_onnx,
    find_paddle_program,
)
from .manifest import DIGEST, MANIFEST, manifest_digest, read_manifest, verify_artifact, write_manifest

__all__ = [
    "DIGEST", "INFERENCE_YML", "KINDS", "LABELS", "MANIFEST", "NB", "NB_TWIN", "PADDLE_PARAMS",
    "PADDLECLAS_DEPLOY_YAMLS", "ArtifactInfo", "DeployConfig", "artifact_kind", "atomic_file",
    "atomic_output_dir", "check_output_dir", "find_ir", "find_nb", "find_onnx",
    "find_paddle_program", "inference_yml", "manifest_digest", "parse_deploy_config", "read_artifact_info",
    "read_deploy_config", "read_labels", "read_manifest", "sha256", "verify_artifact", "within",
    "write_inference_yml", "write_labels", "write_manifest",
]
