"""Device bundles for ``vitdeploy package``: a phone- or board-ready zip (the .nb, a C++ demo,
build and run scripts, self-check data; docs/bundle-format.md).

- ``device``: what a device target is; ``devices``: every one of them (``DEVICES``)
- ``source``: what a bundle is made from (an export, converted here, or a Lite artifact)
- ``bundle``: writing and verifying the zip; ``selfcheck``, ``readme``: its parts
- ``native_build``: building and running a bundle's C++ demo on this machine (the linux-x86
  SDK recipe in its README, and the tests)

Adding a device is one ``Device`` in ``devices.DEVICES``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .device import RELEASES, Device
from .devices import DEVICES as _ALL
from .devices import get_device

if TYPE_CHECKING:
    from .bundle import BundleResult

DEVICES: dict[str, Device] = {d.name: d for d in _ALL}  # in the order --help lists them


def package(artifact: str | Path, target: str, out: str | Path, *, force: bool = False,
            images: str | Path | None = None, selfcheck_count: int = 8, verify: bool = True,
            progress: Callable[[str], None] | None = None) -> BundleResult:
    """Write the bundle for device ``target`` to ``out`` (.zip); see bundle.package."""
    from .bundle import package as _package  # heavy (the converter, the predictor): when used

    return _package(artifact, target, out, force=force, images=images,
                    selfcheck_count=selfcheck_count, verify=verify, progress=progress)


def verify_bundle(path: str | Path) -> dict:
    """Check a bundle (zip or unpacked folder) against its manifest.json; returns the manifest."""
    from .bundle import verify_bundle as _verify

    return _verify(path)


__all__ = ["DEVICES", "RELEASES", "Device", "get_device", "package", "verify_bundle"]
