"""Device targets for ``vitdeploy package``: one module per device family (android.py, linux.py)
declares its targets; bundle.py writes the bundle (docs/bundle-format.md).

Adding a target is one ``Target`` in its family's ``TARGETS`` (plus that family's README text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from .bundle import BundleResult

RELEASES = "https://github.com/PaddlePaddle/Paddle-Lite/releases"


@dataclass(frozen=True)
class Target:
    name: str  # what --target takes
    family: str  # "android" or "linux"
    arch: str  # the .nb arch, as 'vitdeploy convert --to lite --arch' takes it
    abi: str  # what the demo is compiled for
    device: str  # in words, for the README
    # the Paddle Lite prebuilt library: "inference_lite_lib.<lib>[.with_extra][.with_cv].tar.gz";
    # None where the target links the paddlelite wheel's lite.so instead
    lib: str | None
    # the family's README sections for this target: (target, context) -> placeholder -> text
    sections: Callable[[Target, dict[str, Any]], dict[str, str]]

    def archive(self, with_extra: bool) -> str | None:
        """The release asset name. ``with_cv`` (Lite's own CV helpers) is not used by the demo,
        but the ``with_extra`` builds are published with it."""
        if self.lib is None:
            return None
        return f"inference_lite_lib.{self.lib}{'.with_extra' if with_extra else ''}.with_cv.tar.gz"

    def release_url(self, opt_version: str) -> str:
        return f"{RELEASES}/tag/{opt_version}"

    def archive_url(self, opt_version: str, with_extra: bool) -> str | None:
        name = self.archive(with_extra)
        return f"{RELEASES}/download/{opt_version}/{name}" if name else None


def targets() -> dict[str, Target]:
    """Every target by name, in the order --help lists them."""
    return {t.name: t for family in (android, linux) for t in family.TARGETS}


def get_target(name: str) -> Target:
    known = targets()
    if name not in known:
        raise OptionError(f"unknown --target {name!r}; available: {', '.join(known)}")
    return known[name]


def package(artifact: str | Path, target: str, out: str | Path, *, force: bool = False,
            images: str | Path | None = None, selfcheck_count: int = 8, verify: bool = True,
            progress: Callable[[str], None] | None = None) -> BundleResult:
    """Write the bundle for ``target`` to ``out`` (.zip); see bundle.package."""
    from .bundle import package as _package

    return _package(artifact, target, out, force=force, images=images,
                    selfcheck_count=selfcheck_count, verify=verify, progress=progress)


def verify_bundle(path: str | Path) -> dict:
    """Check a bundle (zip or unpacked folder) against its manifest.json; returns the manifest."""
    from .bundle import verify_bundle as _verify

    return _verify(path)


# The family modules build their Target objects from the class above (hence imported last).
from . import android, linux  # noqa: E402

__all__ = ["RELEASES", "Target", "get_target", "package", "targets", "verify_bundle"]
