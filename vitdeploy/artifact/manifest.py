"""``manifest.json``: what an artifact holds (every file's sha256, and the manifest's own digest)
and how it was made. Written, read and verified here only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, first_line
from .files import sha256, within

MANIFEST = "manifest.json"
DIGEST = "manifest_sha256"


def manifest_digest(manifest: dict[str, Any]) -> str:
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
    manifest[DIGEST] = manifest_digest(manifest)
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
    if manifest.get(DIGEST) != manifest_digest(manifest):
        what = "has no digest (written by an older vitdeploy?)" if DIGEST not in manifest \
            else "was edited: its digest does not match its content"
        raise ArtifactError(f"{path} {what}; {fix}")
    root = d.resolve()
    for rel, digest in sorted(files.items()):
        f = (d / rel)
        if not within(f.resolve(), root) or rel.startswith("/"):
            raise ArtifactError(f"{path} lists {rel!r}, outside {d}; {fix}")
        if not f.is_file():
            raise ArtifactError(f"{d} is incomplete: {rel} (listed in {MANIFEST}) is missing; {fix}")
        if sha256(f) != digest:
            raise ArtifactError(f"{f} does not match its sha256 in {MANIFEST} (corrupted or "
                                f"modified); {fix}")
    return manifest




def read_manifest(directory: str | Path, strict: bool = True) -> dict[str, Any]:
    """The manifest as a dict; {} for a directory without one (a PaddleClas export). ``strict``:
    a manifest that is not a JSON object is an error naming it; else it reads as {} (callers that
    only look for hints, verified or not, elsewhere)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        if not strict:
            return {}
        raise ArtifactError(f"{path} is not valid JSON: {first_line(e)}") from None
    if not isinstance(manifest, dict):
        if not strict:
            return {}
        raise ArtifactError(f"{path} is not a JSON object")
    return manifest
