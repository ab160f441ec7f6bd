"""Portable reference files: an artifact's outputs on preprocessed images, saved as one .npz.

Computed where the reference runs (a GPU server, the training box) and checked anywhere with
``vitdeploy parity REF.npz ARTIFACT``: the file carries the preprocessed inputs, so the checking
machine needs neither the images nor Paddle. Plain arrays only (meta is a JSON string), so
``np.load(allow_pickle=False)`` reads it; written atomically, byte for byte reproducibly.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..about import machine, versions
from ..artifact import DIGEST, atomic_file, sha256
from ..errors import OutputExistsError, ReferenceFileError, VitdeployError, first_line
from ..models.config import PreprocessConfig
from ..options import positive_int
from ..preprocess import Skipped, check_policy, collect_images, no_usable_images, preprocess_usable

if TYPE_CHECKING:
    from ..artifact import ArtifactInfo

FORMAT = "vitdeploy-reference"
FORMAT_VERSION = 1
SUFFIX = ".npz"
CREATED_BY = "vitdeploy reference"
ARRAYS = ("inputs", "outputs", "images", "image_sha256", "meta")  # plus format, version, labels?
MAX_BYTES = 8 << 30  # inputs and outputs are held in memory, here and by parity
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same content gives the same bytes
_META_TYPES = {"model": (str, type(None)), "runtime": str, "artifact_precision": str,
               "compute_precision": str, "preprocess": dict}
_PACKAGES = {"paddle": ("paddlepaddle",), "onnxruntime": ("onnxruntime",),
             "openvino": ("openvino",), "lite": ("paddlelite", "paddlepaddle")}


@dataclass(eq=False)
class Reference:
    """``inputs`` [N,3,H,W] float32 (vitdeploy's preprocessing) and the raw ``outputs`` [N,C]
    float32 one artifact gave for them at batch 1, with where they came from."""

    inputs: np.ndarray
    outputs: np.ndarray
    images: list[str]  # relative names ("test/0/a.png"): no absolute path is stored
    image_sha256: list[str]
    meta: dict[str, Any]
    labels: list[str] | None = None
    skipped: Skipped = field(default_factory=list)  # left out while computing; not saved
    path: Path | None = None  # the file it was loaded from or saved to

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.inputs.shape[2]), int(self.inputs.shape[3])

    @property
    def model(self) -> str | None:
        return self.meta.get("model")

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.meta["preprocess"])

    def topk(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(class ids [N,k] int64, raw outputs [N,k] float32), best first, ties to the lower id."""
        idx = np.argsort(-self.outputs, axis=1, kind="stable")[:, :min(k, self.outputs.shape[1])]
        return idx.astype(np.int64), np.take_along_axis(self.outputs, idx, axis=1)

    def describe(self) -> dict[str, Any]:
        """Where the reference came from, for reports (parity's reference line, the summary)."""
        m = self.meta
        return {"kind": "file", "file": str(self.path) if self.path else None,
                "model": m.get("model"), "artifact": (m.get("artifact") or {}).get("name"),
                "runtime": m["runtime"], "precision": m["compute_precision"],
                "artifact_precision": m["artifact_precision"],
                "machine": (m.get("machine") or {}).get("cpu"), "versions": m.get("versions", {}),
                "count": len(self.inputs), "input_shape": list(self.inputs.shape[1:]),
                "num_classes": int(self.outputs.shape[1]), "created_by": m.get("created_by")}


def is_reference_file(path: object) -> bool:
    """What parity takes for a reference file rather than an artifact directory: a .npz path."""
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() == SUFFIX


def artifact_model(info: ArtifactInfo, model: str | None = None) -> str | None:
    """The architecture an artifact holds: --model, else its manifest; None when unknown."""
    if model is not None:
        from ..models import get_config

        return get_config(model).name
    name = info.manifest.get("model")
    return name if isinstance(name, str) else None


def check_artifact(ref: Reference, info: ArtifactInfo, artifact: str | Path,
                   model: str | None = None) -> None:
    """One line when ``artifact`` cannot be judged against ``ref`` (size, classes, model)."""
    where = ref.path or "the reference"
    h, w = ref.input_size
    size = info.preprocess.crop_size
    if (h, w) != (size, size):
        raise ReferenceFileError(f"reference {where} holds {h}x{w} inputs but {artifact} takes "
                                 f"{size}x{size}; compute the reference from the same model")
    classes = ref.outputs.shape[1]
    if info.num_classes is not None and info.num_classes != classes:
        raise ReferenceFileError(f"reference {where} has {classes} classes but {artifact} has "
                                 f"{info.num_classes}")
    name = artifact_model(info, model)
    if ref.model and name and ref.model != name:
        raise ReferenceFileError(f"reference {where} is of model {ref.model} but {artifact} is "
                                 f"{name}; compute the reference from that model's export")


def _named_images(given: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Image files, each with a relative name: a folder's images as folder/rel, a file by its name."""
    paths: list[Path] = []
    names: list[str] = []
    for g in given:
        p = Path(g)
        found = collect_images([p])
        paths += found
        if p.is_dir():
            top = p.resolve().name
            names += [PurePosixPath(top, f.relative_to(p).as_posix()).as_posix() for f in found]
        else:
            names.append(p.name)
    return paths, names


def _versions(runtime: str) -> dict[str, str]:
    return versions(("numpy", *_PACKAGES.get(runtime, ())))  # type: ignore[return-value]


def _machine() -> dict[str, Any]:
    m = machine()
    return {k: m[k] for k in ("cpu", "arch", "system", "logical_cpus")}


def compute_reference(artifact: str | Path, images: str | Path | Sequence[str | Path], *,
                      runtime: str | None = None, precision: str | None = None,
                      limit: int | None = None, model: str | None = None, verify: bool = True,
                      on_bad_image: str = "skip", max_pixels: int | None = None,
                      progress: Callable[[str], None] | None = None,
                      threads: int | None = None) -> Reference:
    """Run ``artifact`` at batch 1 on ``images`` (files or folders, sorted; the first ``limit``).
    Bad images are skipped (``.skipped``) or raised with ``on_bad_image="stop"``."""
    from ..predictor import Predictor

    say = progress or (lambda _msg: None)
    check_policy(on_bad_image)
    if limit is not None:
        positive_int(limit, "--limit")
    given = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    if not given:
        raise VitdeployError("no images given; pass --images DIR with the images to compute on")
    paths, names = _named_images(given)
    paths, names = paths[:limit], names[:limit]
    with Predictor(artifact, runtime=runtime, precision=precision, model=model,
                   verify=verify, threads=threads) as pred:
        pre, rt = pred.info.preprocess, pred.runtime
        need = len(paths) * 3 * pre.crop_size ** 2 * 4
        if need > MAX_BYTES:
            raise VitdeployError(f"{len(paths)} inputs of 3x{pre.crop_size}x{pre.crop_size} float32 "
                                 f"need {need / 2**30:.1f} GiB (limit {MAX_BYTES >> 30} GiB); "
                                 "pass --limit or fewer images")
        x, kept, skipped = preprocess_usable(paths, pre, on_bad_image=on_bad_image,
                                             max_pixels=max_pixels)
        if not kept:
            raise no_usable_images(skipped)
        say(f"reference: {rt.name} on {len(x)} inputs")
        y = np.concatenate([pred.predict_batch(x[i:i + 1]) for i in range(len(x))])
        y = np.ascontiguousarray(y, dtype=np.float32)
        name = artifact_model(pred.info, model)
        labels = list(pred.info.labels) or None
        meta = {"created_by": CREATED_BY, "model": name,
                "artifact": {"name": Path(artifact).resolve().name,
                             "format": pred.info.manifest.get("format"),
                             "manifest_sha256": pred.info.manifest.get(DIGEST),
                             "verified": bool(verify and pred.info.manifest)},
                "runtime": rt.name, "runtime_detail": rt.detail,
                "artifact_precision": rt.artifact_precision,
                "compute_precision": rt.compute_precision, "notes": list(rt.notes),
                "batch_size": 1, "softmax": pred.info.softmax, "preprocess": pre.to_dict(),
                "versions": _versions(rt.name), "machine": _machine()}
    if y.ndim != 2 or len(y) != len(x):
        raise ReferenceFileError(f"{artifact} gave outputs of shape {list(y.shape)} for "
                                 f"{len(x)} inputs; a reference needs [N, classes]")
    if not np.isfinite(y).all():
        bad = int((~np.isfinite(y).all(axis=1)).sum())
        raise ReferenceFileError(f"{artifact} gave non-finite outputs (NaN/inf) on {bad} of "
                                 f"{len(y)} inputs; a reference must be finite")
    by_path = {str(p): n for p, n in zip(paths, names, strict=True)}
    ids, _ = Reference(x, y, [], [], meta).topk(5)
    meta["images"] = {"count": len(kept), "limit": limit,
                      "skipped": [by_path.get(p, Path(p).name) for p, _ in skipped]}
    meta["topk"] = {"k": ids.shape[1], "class_ids": ids.tolist(),
                    "labels": [[labels[c] for c in row] for row in ids] if labels else None}
    return Reference(x, y, [names[i] for i in kept], [sha256(paths[i]) for i in kept], meta,
                     labels, skipped)


def check_reference_out(path: str | Path, *, force: bool = False,
                        protect: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an --out that is not .npz, exists without ``force``, or lies inside one of
    ``protect`` (the artifact: writing there would break its manifest). Call it before long work."""
    p = Path(path)
    if p.suffix.lower() != SUFFIX:
        raise VitdeployError(f"--out {p}: a reference file is a {SUFFIX} file; name it e.g. "
                             f"{p.with_suffix(SUFFIX).name}")
    if p.is_dir():
        raise OutputExistsError(f"--out {p} is a directory; name a {SUFFIX} file")
    for given in protect:
        if given is None:
            continue
        d = Path(given)
        if d.absolute() in p.absolute().parents or d.resolve() in p.resolve().parents:
            raise OutputExistsError(f"--out {p} is inside the artifact {d}; writing there would "
                                    "change the artifact, so choose another --out")
    if p.exists() and not force:
        raise OutputExistsError(f"{p} exists; pass --force to replace it")
    return p


def _arrays(ref: Reference) -> dict[str, np.ndarray]:
    try:
        meta = json.dumps(ref.meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ReferenceFileError(f"reference meta is not plain JSON: {first_line(e)}") from None
    arrays = {"format": np.array(FORMAT), "version": np.array(FORMAT_VERSION, dtype=np.int64),
              "inputs": np.asarray(ref.inputs), "outputs": np.asarray(ref.outputs),
              "images": np.array(ref.images, dtype=str).reshape(-1),
              "image_sha256": np.array(ref.image_sha256, dtype=str).reshape(-1),
              "meta": np.array([meta])}
    if ref.labels is not None:
        arrays["labels"] = np.array(ref.labels, dtype=str).reshape(-1)
    return arrays


def save_reference(ref: Reference, path: str | Path, *, force: bool = False,
                   protect: Iterable[str | Path | None] = ()) -> Path:
    """Write ``ref`` to ``path`` (.npz) atomically: a temp file beside it, then os.replace.
    The arrays are validated as ``load_reference`` would, so what is written can be read."""
    p = check_reference_out(path, force=force, protect=protect)
    arrays = _arrays(ref)
    _from_arrays(arrays, str(p))
    with atomic_file(p) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                with z.open(info, "w", force_zip64=True) as w:
                    np.lib.format.write_array(w, np.asarray(arr, order="C"), allow_pickle=False)
    ref.path = p
    return p


def load_reference(path: str | Path) -> Reference:
    """Read and validate a reference file; anything wrong is one ReferenceFileError line.
    Pickles are never loaded (``allow_pickle=False``)."""
    p = Path(path)
    if not p.is_file():
        raise ReferenceFileError(f"reference file not found: {p}" if not p.exists()
                                 else f"reference {p} is not a file")
    foreign = f"{p} is not a vitdeploy reference file"
    try:
        with zipfile.ZipFile(p) as z:
            size = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ReferenceFileError(f"{foreign} (not a .npz archive: {first_line(e)}); create one "
                                 "with 'vitdeploy reference'") from None
    if size > MAX_BYTES + (64 << 20):
        raise ReferenceFileError(f"{p} unpacks to {size / 2**30:.1f} GiB (limit "
                                 f"{MAX_BYTES >> 30} GiB); not loading it")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ReferenceFileError(f"{p} holds a pickled (object) array; reference files hold "
                                     "plain arrays only, and pickles are never loaded") from None
        raise ReferenceFileError(f"{foreign} ({first_line(e)})") from None
    except Exception as e:  # a corrupt member: zlib, CRC, truncated data...
        raise ReferenceFileError(f"{p} is corrupt ({type(e).__name__}: {first_line(e)})") from None
    ref = _from_arrays(arrays, str(p))
    ref.path = p
    return ref


def _text(a: np.ndarray | None, n: int | None) -> bool:
    return a is not None and a.dtype.kind == "U" and a.ndim == 1 and (n is None or len(a) == n)


def _from_arrays(a: dict[str, np.ndarray], where: str) -> Reference:
    """The Reference the arrays describe, or one ReferenceFileError saying what is wrong."""
    def bad(msg: str) -> ReferenceFileError:
        return ReferenceFileError(f"{where}: {msg}")

    fmt, version = a.get("format"), a.get("version")
    if fmt is None or fmt.dtype.kind != "U" or fmt.shape != () or str(fmt) != FORMAT:
        raise bad(f"not a vitdeploy reference file (no {FORMAT!r} marker); create one with "
                  "'vitdeploy reference'")
    if version is None or version.dtype.kind not in "iu" or version.shape != () or int(version) < 1:
        raise bad("no valid format version")
    if int(version) > FORMAT_VERSION:
        raise bad(f"format version {int(version)} is newer than this vitdeploy reads "
                  f"({FORMAT_VERSION}); upgrade vitdeploy")
    if missing := [k for k in ARRAYS if k not in a]:
        raise bad(f"missing {', '.join(missing)}")
    x, y = a["inputs"], a["outputs"]
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != 3 or 0 in x.shape:
        raise bad(f"inputs must be float32 [N,3,H,W] with N >= 1, got {x.dtype} {list(x.shape)}")
    n = len(x)
    if y.dtype != np.float32 or y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
        raise bad(f"outputs must be float32 [{n}, classes] for {n} inputs, got {y.dtype} "
                  f"{list(y.shape)}")
    for name, arr in (("inputs", x), ("outputs", y)):
        if not np.isfinite(arr).all():
            raise bad(f"{name} hold {int((~np.isfinite(arr)).sum())} NaN/inf values")
    images, digests = a["images"], a["image_sha256"]
    if not _text(images, n) or not _text(digests, n):
        raise bad(f"images and image_sha256 must be {n} strings each (one per input)")
    if any(PurePosixPath(s).is_absolute() or PureWindowsPath(s).is_absolute() or
           PureWindowsPath(s).drive for s in images.tolist()):
        raise bad("image names must be relative (no absolute paths)")
    if not all(re.fullmatch(r"[0-9a-f]{64}", s) for s in digests.tolist()):
        raise bad("image_sha256 must hold 64-digit lowercase hex digests")
    labels = a.get("labels")
    if labels is not None and not _text(labels, y.shape[1]):
        raise bad(f"labels must be {y.shape[1]} strings (one per class)")
    raw = a["meta"]
    try:
        meta = json.loads(str(raw[0])) if raw.dtype.kind == "U" and raw.shape == (1,) else None
    except json.JSONDecodeError as e:
        raise bad(f"meta is not valid JSON ({first_line(e)})") from None
    if not isinstance(meta, dict):
        raise bad("meta must be one JSON object string")
    for key, kind in _META_TYPES.items():
        if not isinstance(meta.get(key, ...), kind):
            raise bad(f"meta.{key} is missing or of the wrong type")
    try:
        pre = PreprocessConfig.from_dict(meta["preprocess"])
    except (TypeError, ValueError) as e:
        raise bad(f"meta.preprocess is invalid ({first_line(e)})") from None
    if not isinstance(pre.crop_size, int) or x.shape[2:] != (pre.crop_size, pre.crop_size):
        raise bad(f"inputs are {x.shape[2]}x{x.shape[3]} but meta.preprocess crops to "
                  f"{pre.crop_size}")
    return Reference(x, y, images.tolist(), digests.tolist(), meta,
                     labels.tolist() if labels is not None else None)
