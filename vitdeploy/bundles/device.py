"""What a device target of ``vitdeploy package`` is: its name (``--target``), the .nb arch, the ABI
the demo is compiled for, the Paddle Lite release archive it links, and its README sections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RELEASES = "https://github.com/PaddlePaddle/Paddle-Lite/releases"


@dataclass(frozen=True)
class Device:
    name: str  # what --target takes
    family: str  # "android" or "linux"
    arch: str  # the .nb arch, as 'vitdeploy convert --to lite --arch' takes it
    abi: str  # what the demo is compiled for
    device: str  # in words, for the README
    # the Paddle Lite prebuilt library: "inference_lite_lib.<lib>[.with_extra][.with_cv].tar.gz";
    # None where the target links the paddlelite wheel's lite.so instead
    lib: str | None
    # the family's README sections for this target: (target, context) -> placeholder -> text
    sections: Callable[[Device, dict[str, Any]], dict[str, str]]

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
