"""What a bundle is made from: an export (converted here to the target's .nb) or a Lite artifact
already built for the target's arch; anything else is refused in one line saying what to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..artifact import (
    DIGEST,
    MANIFEST,
    NB,
    ArtifactInfo,
    artifact_kind,
    read_artifact_info,
    read_manifest,
    sha256,
    verify_artifact,
)
from ..errors import ArtifactError, CheckpointError
from ..lite.naive_buffer import NbInfo, read_nb
from .device import Device

# What the demo's C++ preprocessing implements (docs/bundle-format.md).
CPP_INTERPOLATIONS = {"pil": ("bicubic", "bilinear", "nearest"),
                      "cv2": ("bilinear", "bicubic", "nearest", "area")}


@dataclass
class BundleSource:
    target: Device
    kind: str  # "paddle" (an export) or "lite"
    model: str
    info: ArtifactInfo  # preprocessing and labels
    softmax: bool  # the graph ends in softmax: outputs are probabilities
    nb_path: Path
    nb: NbInfo
    manifest_digest: str | None  # of the source artifact's manifest, when it has one
    reference_dir: Path  # what computes the reference outputs, with which runtime
    reference_runtime: str  # (the source was verified already: the reference run does not re-hash)
    verified: bool  # the source artifact was checked against its manifest


def _kind(d: Path, manifest: dict) -> str:
    kind = artifact_kind(d, manifest)
    if kind is None:
        raise ArtifactError(f"{d} holds neither a Paddle export (inference.json / inference.pdmodel) "
                            "nor a Paddle Lite model.nb; package the export 'vitdeploy export' wrote")
    return kind


def _check_preprocess(info: ArtifactInfo, d: Path) -> None:
    pre = info.preprocess
    backend, interp = pre.backend.lower(), pre.interpolation.lower()
    allowed = CPP_INTERPOLATIONS.get(backend, ())
    if interp not in allowed:
        raise ArtifactError(
            f"{d} resizes with {backend} {interp}; the bundle's C++ demo reproduces "
            + "; ".join(f"{b}: {', '.join(i)}" for b, i in CPP_INTERPOLATIONS.items())
            + " (change ResizeImage in its inference.yml and re-check accuracy with 'vitdeploy eval')")


def _recorded_export(manifest: dict, info: ArtifactInfo) -> Path | None:
    """The export a Lite artifact was converted from, if it is still where the manifest says,
    still holds the same program and weights (their sha256) and preprocesses alike: its Paddle
    Inference answer is then the reference."""
    src = manifest.get("source")
    if not isinstance(src, dict) or src.get("kind") != "paddle" or not src.get("dir"):
        return None
    d = Path(src["dir"])
    files = src.get("files") or {}
    if not d.is_dir() or not files:
        return None
    try:
        same = all((d / n).is_file() and sha256(d / n) == h for n, h in files.items())
    except OSError:
        return None
    if not same:
        return None
    try:
        return d if read_artifact_info(d).preprocess == info.preprocess else None
    except ArtifactError:
        return None


def _convert(export: Path, target: Device, out: Path, say: Callable[[str], None]) -> Path:
    from ..convert import convert

    try:
        convert(export, "lite", out, arch=target.arch, verify=False, progress=say)
    except CheckpointError as e:
        raise CheckpointError(
            f"{e}; 'vitdeploy package' converts from the checkpoint the export recorded: convert "
            f"it yourself ('vitdeploy convert {export} --to lite --arch {target.arch} --weights "
            "CKPT --out DIR') and package that Lite artifact") from None
    return out / "model.nb"


def resolve_source(artifact: Path, target: Device, lite_out: Path, *, verify: bool,
                   progress: Callable[[str], None]) -> BundleSource:
    if verify:
        progress(f"verifying {artifact}")
        verify_artifact(artifact)
    manifest = read_manifest(artifact, strict=False)  # hints; verified above unless --no-verify
    kind = _kind(artifact, manifest)
    how = (f"package the export instead (vitdeploy converts it for {target.name}), or convert it "
           f"with 'vitdeploy convert EXPORT --to lite --arch {target.arch}'")
    if kind in ("onnx", "openvino"):
        raise ArtifactError(f"{artifact} is an {kind} artifact; --target {target.name} needs a "
                            f"Paddle Lite .nb built for {target.arch}; {how}")
    info = read_artifact_info(artifact)
    _check_preprocess(info, artifact)
    digest = manifest.get(DIGEST)
    if not digest and (artifact / MANIFEST).is_file():
        digest = sha256(artifact / MANIFEST)
    model = manifest.get("model") or "unknown"
    if kind == "paddle":
        progress(f"converting {artifact} to a Paddle Lite {target.arch} .nb")
        nb_path = _convert(artifact, target, lite_out, progress)
        ref_dir, ref_runtime = artifact, "paddle"
    else:
        lite = manifest.get("lite") if isinstance(manifest.get("lite"), dict) else {}
        arch = lite.get("arch") or (manifest.get("options") or {}).get("arch")
        if arch is None:
            raise ArtifactError(f"{artifact} has a model.nb but no {MANIFEST} saying which arch it "
                                f"was built for; --target {target.name} needs {target.arch}; {how}")
        if arch != target.arch:
            raise ArtifactError(f"{artifact} is a Paddle Lite {arch} artifact; --target "
                                f"{target.name} needs a .nb built for {target.arch}; {how}")
        nb_path = artifact / NB
        recorded = _recorded_export(manifest, info)
        # the recorded export's model files were just hashed; its other files do not matter here
        ref_dir, ref_runtime = (recorded, "paddle") if recorded is not None else (artifact, "lite")
    nb = read_nb(nb_path)
    unplaced = nb.unplaced(target.arch)
    if unplaced:
        raise ArtifactError(f"{nb_path} has ops without a {target.arch} kernel: "
                            f"{', '.join(unplaced)}; --target {target.name} cannot run it")
    softmax = bool(manifest.get("softmax", info.softmax))
    return BundleSource(target, kind, model, info, softmax, nb_path, nb, digest or None, ref_dir,
                        ref_runtime, verify and bool(manifest))
