"""``vitdeploy package``: an export (or a Lite artifact) -> a self-checking device bundle (.zip).

The layout, config.json and the zip's determinism rules are docs/bundle-format.md. The bundle is
assembled in a temp dir, zipped to a temp file beside --out and moved into place, so a failure
leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..about import __version__
from ..artifact import DIGEST, MANIFEST, atomic_file, manifest_digest, sha256, within, write_manifest
from ..errors import ArtifactError, OptionError, OutputExistsError, VitdeployError
from ..lite.naive_buffer import canonicalize_nb
from ..options import positive_int
from .devices import get_device
from .readme import render_readme
from .selfcheck import bundle_name, compute_reference, pick_images, synthetic_images
from .source import BundleSource, resolve_source

FORMAT = "vitdeploy-bundle/1"
SELFCHECK_RANGE = (1, 64)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
TEMPLATES = Path(__file__).parent / "templates"
README_TEMPLATE = "README.md.in"
REQUIRED_TEMPLATES = ("src/main.cc", "CMakeLists.txt", "build.sh", "run.sh", README_TEMPLATE)
# The demo's preprocessing check: one 8-bit grey level, on 99.9% of the values (the contract's).
PIXEL_TOLERANCE = 1.0 / 255.0
PIXEL_MIN_FRACTION = 0.999


@dataclass
class BundleResult:
    path: str
    target: str
    arch: str
    model: str
    files: list[tuple[str, int]]  # (path inside the bundle folder, bytes), sorted
    size: int  # bytes of the zip
    sha256: str  # of the zip
    opt_version: str
    with_extra: bool
    tolerance: dict[str, Any]  # the precision judged and its bounds, as config.json has them
    selfcheck_count: int
    selfcheck_source: str  # "images" or "synthetic"
    reference: dict[str, str]  # what computed the reference outputs
    skipped: list[tuple[str, str]]  # --images left out (not readable by OpenCV or vitdeploy)


def _check_request(artifact: Path, out: Path, force: bool, selfcheck_count: int) -> None:
    """Everything that can be refused before any work, each in one line."""
    lo, hi = SELFCHECK_RANGE
    positive_int(selfcheck_count, "--selfcheck-count", lo, hi)
    if out.suffix.lower() != ".zip" or not out.stem:
        raise OptionError(f"--out {out} must name a .zip file (e.g. {out.with_suffix('.zip').name})")
    if not artifact.is_dir():
        raise ArtifactError(f"artifact directory not found: {artifact}")
    if out.is_dir():
        raise OutputExistsError(f"--out {out} is a directory; name a .zip file")
    if within(out.absolute().resolve(), artifact.absolute().resolve()):
        raise OutputExistsError(f"--out {out} is inside the artifact {artifact}; writing there "
                                "would change the artifact (its manifest would no longer match), "
                                "so choose another --out")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to replace it")


def _check_templates() -> None:
    missing = [n for n in REQUIRED_TEMPLATES if not (TEMPLATES / n).is_file()]
    if missing:
        raise VitdeployError(f"vitdeploy's bundle templates are incomplete ({', '.join(missing)} "
                             f"missing from {TEMPLATES}); reinstall vitdeploy")


def _filestorage_safe(data: Any, where: str = "config") -> None:
    """config.json is read with cv::FileStorage, which has no null and no booleans."""
    if data is None or isinstance(data, bool):
        raise VitdeployError(f"internal error: {where} is {data!r}, which cv::FileStorage cannot read")
    if isinstance(data, dict):
        for k, v in data.items():
            _filestorage_safe(v, f"{where}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _filestorage_safe(v, f"{where}[{i}]")


def _config(src: BundleSource, names: list[str], outputs: np.ndarray, tolerance: dict[str, Any],
            reference: dict[str, str]) -> dict[str, Any]:
    pre = src.info.preprocess
    n_classes = int(outputs.shape[1])
    config = {
        "format": FORMAT,
        "model": src.model,
        "target": src.target.name,
        "arch": src.target.arch,
        "num_classes": n_classes,
        "input": {"shape": [1, 3, pre.crop_size, pre.crop_size], "layout": "NCHW",
                  "dtype": "float32"},
        "preprocess": {"resize_short": pre.resize_short, "crop_size": pre.crop_size,
                       "interpolation": pre.interpolation.lower(), "backend": pre.backend.lower(),
                       "scale": float(pre.scale), "mean": [float(v) for v in pre.mean],
                       "std": [float(v) for v in pre.std], "channel_order": "RGB"},
        "outputs_probabilities": int(src.softmax),
        "topk": min(5, n_classes),
        "lite": {"opt_version": src.nb.opt_version, "with_extra": int(bool(src.nb.needs_extra()))},
        "selfcheck": {"count": len(names), "images": [f"selfcheck/images/{n}" for n in names],
                      "inputs": "selfcheck/inputs.bin", "outputs": "selfcheck/outputs.bin",
                      "min_cosine": tolerance["min_cosine"],
                      "min_top1_agreement": tolerance["min_top1_agreement"],
                      "max_abs": tolerance["max_abs"],
                      "pixel_tolerance": PIXEL_TOLERANCE, "pixel_min_fraction": PIXEL_MIN_FRACTION,
                      "reference": {"runtime": reference["runtime"],
                                    "precision": reference["precision"], "vitdeploy": __version__,
                                    **{k: v for k, v in reference.items()
                                       if k not in ("runtime", "precision")}}},
    }
    _filestorage_safe(config)
    return config


def _tolerance(src: BundleSource, reference_precision: str) -> dict[str, Any]:
    """The parity preset of the loosest of what the .nb stores, what its kernels compute in and
    what the reference computed in."""
    from ..precision import judged, preset

    stored = src.nb.weight_precision()
    as_ = judged("fp32" if stored == "unknown" else stored, src.nb.compute_precision(),
                 reference_precision)
    tol = preset(as_)
    return {"precision": as_, "min_cosine": tol.min_cosine,
            "min_top1_agreement": tol.min_top1_agreement,
            "max_abs": -1 if tol.max_abs is None else tol.max_abs}  # -1: not judged


def _labels(src: BundleSource, n_classes: int) -> list[str]:
    labels = src.info.labels
    return labels if len(labels) == n_classes else [f"class_{i}" for i in range(n_classes)]


def _copy_templates(root: Path) -> None:
    for p in sorted(TEMPLATES.rglob("*")):
        rel = p.relative_to(TEMPLATES)
        # the native helpers' build outputs or editor files are not part of a bundle
        if not p.is_file() or p.name == README_TEMPLATE or any(
                part.startswith(".") or part in ("__pycache__", "build") for part in rel.parts):
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, root / rel)


def _write_tree(root: Path, src: BundleSource, images: list[Path], x: np.ndarray, y: np.ndarray,
                reference: dict[str, str], tolerance: dict[str, Any], source_kind: str) -> None:
    names = [bundle_name(i, p) for i, p in enumerate(images)]
    (root / "selfcheck" / "images").mkdir(parents=True)
    for name, p in zip(names, images):
        shutil.copyfile(p, root / "selfcheck" / "images" / name)  # bytes as given
    (root / "selfcheck" / "inputs.bin").write_bytes(np.ascontiguousarray(x, "<f4").tobytes())
    (root / "selfcheck" / "outputs.bin").write_bytes(np.ascontiguousarray(y, "<f4").tobytes())
    _copy_model(src.nb_path, root / "model.nb")
    (root / "labels.txt").write_bytes("".join(f"{label}\n" for label in
                                              _labels(src, y.shape[1])).encode("utf-8"))
    config = _config(src, names, y, tolerance, reference)
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    _copy_templates(root)
    readme = render_readme((TEMPLATES / README_TEMPLATE).read_text(encoding="utf-8"),
                           src, config, tolerance, source_kind)
    (root / "README.md").write_text(readme, encoding="utf-8")
    write_manifest(root, {
        "format": FORMAT, "target": src.target.name, "arch": src.target.arch,
        "model": src.model, "vitdeploy": __version__,
        "lite": {"opt_version": src.nb.opt_version, "with_extra": bool(src.nb.needs_extra())},
        "source": {"kind": src.kind, **({"manifest_sha256": src.manifest_digest}
                                        if src.manifest_digest else {})},
    })


def _copy_model(nb: Path, dest: Path) -> None:
    """A copy whose header is canonical (a .nb converted by an older vitdeploy may not be)."""
    shutil.copyfile(nb, dest)
    canonicalize_nb(dest)


def _mode(name: str) -> int:
    return 0o755 if name.endswith(".sh") else 0o644


def _write_zip(root: Path, stem: str, dest: IO[bytes]) -> list[tuple[str, int]]:
    """Sorted entries, fixed time and permissions, deflate 9, no extra fields: same tree -> same
    bytes, whatever the files' mtimes or the temp dir's name."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    listing = []
    with zipfile.ZipFile(dest, "w") as zf:
        for rel in files:
            size = (root / rel).stat().st_size
            info = zipfile.ZipInfo(f"{stem}/{rel}", date_time=ZIP_TIME)
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (stat.S_IFREG | _mode(rel)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info._compresslevel = 9  # ZipFile.open(ZipInfo) takes the level from the info only
            info.file_size = size  # lets zipfile choose zip64 (an extra field) only when needed
            with open(root / rel, "rb") as f, zf.open(info, "w") as w:
                shutil.copyfileobj(f, w, 1 << 20)
            listing.append((rel, size))
    return listing


def package(artifact: str | Path, target: str, out: str | Path, *, force: bool = False,
            images: str | Path | None = None, selfcheck_count: int = 8, verify: bool = True,
            progress: Callable[[str], None] | None = None) -> BundleResult:
    """Write the bundle for ``target`` to ``out`` (a .zip). ``artifact``: an export (converted
    to the target's .nb here) or a Lite artifact of the target's arch (its model.nb as is).
    Self-check images: the first ``selfcheck_count`` of ``images``, else synthetic ones."""
    say = progress or (lambda _msg: None)
    spec = get_device(target)
    artifact, out = Path(artifact), Path(out)
    _check_request(artifact, out, force, selfcheck_count)
    _check_templates()
    with tempfile.TemporaryDirectory(prefix="vitdeploy-package-") as tmp_dir:
        tmp = Path(tmp_dir)
        src = resolve_source(artifact, spec, tmp / "lite", verify=verify, progress=say)
        if images is not None:
            say(f"choosing up to {selfcheck_count} self-check images")
            paths, skipped = pick_images(images, selfcheck_count, src.info.preprocess)
            source_kind = "images"
        else:
            paths, skipped = synthetic_images(tmp / "synthetic", selfcheck_count,
                                              src.info.preprocess), []
            source_kind = "synthetic"
        say(f"reference outputs: {src.reference_runtime} on {len(paths)} images")
        x, y, reference = compute_reference(src.reference_dir, paths, src.reference_runtime)
        tolerance = _tolerance(src, reference["precision"])
        root = tmp / "bundle"
        root.mkdir()
        say("writing the bundle")
        _write_tree(root, src, paths, x, y, reference, tolerance, source_kind)
        with atomic_file(out, force=force) as f:
            files = _write_zip(root, out.stem, f)
    return BundleResult(str(out), spec.name, spec.arch, src.model, files, out.stat().st_size,
                        sha256(out), src.nb.opt_version, bool(src.nb.needs_extra()), tolerance,
                        len(paths), source_kind, reference, skipped)


def _open_bundle(path: Path) -> tuple[str, list[str], Callable[[str], IO[bytes]], Any]:
    """(where, file names relative to the bundle folder, opener, closer) of a zip or a folder
    (the bundle folder itself, or the folder holding it)."""
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ArtifactError(f"{path} is not a readable zip: {e}") from None
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any("/" not in n for n in names):
            zf.close()
            raise ArtifactError(f"{path}: a bundle's entries all live under one top folder; "
                                f"found {sorted(tops)[:5]}")
        top = tops.pop()
        return str(path), [n[len(top) + 1:] for n in names], lambda n: zf.open(f"{top}/{n}"), zf.close
    root = path
    if not (root / MANIFEST).is_file():
        subs = [d for d in sorted(path.iterdir()) if (d / MANIFEST).is_file()] if path.is_dir() else []
        if len(subs) != 1:
            raise ArtifactError(f"{path} is neither a bundle .zip nor a folder holding one "
                                f"bundle's {MANIFEST}")
        root = subs[0]
    names = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    return str(root), names, lambda n: open(root / n, "rb"), lambda: None


def _hash(f: IO[bytes]) -> str:
    import hashlib

    h = hashlib.sha256()
    with f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_bundle(path: str | Path) -> dict:
    """Every file of a bundle against its manifest.json (and the manifest's own digest); a
    file that is missing, modified or not listed raises ArtifactError. Returns the manifest."""
    where, names, opener, close = _open_bundle(Path(path))
    try:
        if MANIFEST not in names:
            raise ArtifactError(f"{where} has no {MANIFEST}")
        try:
            with opener(MANIFEST) as f:
                manifest = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"{where}: {MANIFEST} is not valid JSON ({e})") from None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ArtifactError(f"{where}: {MANIFEST} is not a {FORMAT} manifest")
        if manifest.get(DIGEST) != manifest_digest(manifest):
            raise ArtifactError(f"{where}: {MANIFEST} was edited (its digest does not match)")
        unlisted = sorted(set(names) - set(files) - {MANIFEST})
        if unlisted:
            raise ArtifactError(f"{where}: {unlisted[0]} is not listed in {MANIFEST}")
        for rel, digest in sorted(files.items()):
            if rel not in names:
                raise ArtifactError(f"{where} is incomplete: {rel} (listed in {MANIFEST}) is missing")
            if _hash(opener(rel)) != digest:
                raise ArtifactError(f"{where}: {rel} does not match its sha256 in {MANIFEST} "
                                    "(corrupted or modified)")
        return manifest
    finally:
        close()
