"""The bundle's README.md, rendered from templates/README.md.in: the shared sections here, the
device-specific ones (OpenCV, build, run, what was not verified) from the target's family module."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..about import __version__
from ..errors import VitdeployError

if TYPE_CHECKING:
    from .source import BundleSource

# Release assets whose exact name was seen in the release itself (links to
# .../releases/download/<version>/<name> in published deployment guides); other names follow
# Paddle Lite's naming scheme (docs/quick_start/release_lib.md, v2.9 to v2.12).
CONFIRMED_ASSETS = frozenset({
    "v2.13-rc/inference_lite_lib.armlinux.armv8.gcc.with_extra.with_cv.tar.gz",
})
NAMING = "inference_lite_lib.<os>.<arch>.<toolchain>[.<stl>][.with_extra][.with_cv].tar.gz"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def wheel_version(opt_version: str) -> str:
    """The paddlelite wheel of an opt version: opt v2.13-rc is paddlelite 2.13rc0."""
    v = opt_version.removeprefix("v")
    return v.replace("-rc", "rc0") if v.endswith("-rc") else v


def _lite(src: BundleSource, with_extra: bool) -> str:
    t, ver = src.target, src.nb.opt_version
    extra = src.nb.needs_extra()
    why = (f"The model uses ops that only Paddle Lite's `with_extra` builds register "
           f"({', '.join(extra)}), hence that flavour: a library without it cannot load this "
           "model." if with_extra else
           "The model uses no `with_extra` op, so the basic build is enough (a `with_extra` one "
           "works too).")
    if t.lib is None:
        return (f"The demo links the `lite.so` of the `paddlelite=={wheel_version(ver)}` Python "
                f"wheel (Paddle Lite {ver}; see Build). {why}")
    archive = t.archive(with_extra)
    checked = (f"This asset name was confirmed in the {ver} release." if f"{ver}/{archive}" in
               CONFIRMED_ASSETS else
               f"The name follows Paddle Lite's release naming (`{NAMING}`); vitdeploy could not "
               f"confirm this exact file in the {ver} release: if it is not listed there, take "
               f"the `{t.lib}` build{' with `with_extra`' if with_extra else ''} from that page.")
    return (f"Download **`{archive}`** from the [Paddle Lite {ver} release]({t.release_url(ver)}):\n\n"
            f"    {t.archive_url(ver, with_extra)}\n\n"
            f"and unpack it (`tar xzf {archive}`): `PADDLE_LITE_DIR` below is its `cxx/` folder "
            f"(`include/`, `lib/`). {why}\n\n{checked}")


def _selfcheck(config: dict[str, Any], tolerance: dict[str, Any], src: BundleSource,
               source_kind: str) -> str:
    sc = config["selfcheck"]
    ref = sc["reference"]
    by = ("Paddle Inference (fp32) on the export" if ref["runtime"] == "paddle" else
          f"Paddle Lite on x86 ({ref.get('detail', 'x86')})")
    images = ("the first images of the folder given with `--images`" if source_kind == "images"
              else "synthetic images (seeded gradients, discs and noise; no image set was given)")
    bounds = [f"cosine ≥ {sc['min_cosine']} on every image",
              f"top-1 agreement ≥ {sc['min_top1_agreement']}"]
    if sc["max_abs"] >= 0:
        bounds.append(f"max |diff| ≤ {sc['max_abs']}")
    return (
        f"`selfcheck/images/` holds {sc['count']} reference images: {images}. "
        "`selfcheck/inputs.bin` (float32 [N, 3, H, W]) is vitdeploy's Python preprocessing of "
        f"them, and `selfcheck/outputs.bin` (float32 [N, {config['num_classes']}]) what {by} gave "
        "for those inputs.\n\n"
        "1. **Preprocessing**: the demo's own C++ preprocessing of each image must match "
        f"`inputs.bin` within {sc['pixel_tolerance']:.6f} in 0..1 pixel units (one 8-bit grey "
        f"level) on at least {sc['pixel_min_fraction']:.1%} of the values.\n"
        "2. **Model**: Paddle Lite on the device, run on `inputs.bin`, must agree with "
        f"`outputs.bin`: {', '.join(bounds)}. These are vitdeploy's parity tolerances for "
        f"{tolerance['precision']} (the `.nb` stores {src.nb.weight_precision()} weights and "
        f"computes in {src.nb.compute_precision()}).\n\n"
        "It prints the worst image and bound, and exits 2 when a bound is not met.")


def _preprocess(config: dict[str, Any]) -> str:
    p = config["preprocess"]
    crop = p["crop_size"]
    how = ("Pillow's resampling, reproduced in C++" if p["backend"] == "pil" else "`cv::resize`")
    outputs = "probabilities (the graph ends in softmax)" if config["outputs_probabilities"] \
        else "logits"
    return (
        "What vitdeploy's Python preprocessing does, and the demo reproduces: decode with OpenCV "
        "(`IMREAD_COLOR`: EXIF orientation applied, alpha dropped, grey to 3 channels), BGR to "
        f"RGB; resize so that the short side is {p['resize_short']} pixels ({p['interpolation']}, "
        f"{how}); centre-crop {crop}×{crop}; `(x * {p['scale']:.8g} - mean) / std` per RGB channel "
        f"with mean {p['mean']} and std {p['std']}, in float32; HWC to CHW. The model takes a "
        f"float32 [1, 3, {crop}, {crop}] tensor (NCHW) and gives {config['num_classes']} "
        f"{outputs}.")


def _verification(src: BundleSource, config: dict[str, Any]) -> str:
    ref = config["selfcheck"]["reference"]
    ref_text = ("Paddle Inference on the export" if ref["runtime"] == "paddle" else
                f"Paddle Lite on x86 ({ref.get('detail', 'x86')})")
    checked = "the source artifact against its manifest; " if src.verified else ""
    return (
        f"vitdeploy checked, writing this bundle: {checked}that every op of `model.nb` has a "
        f"kernel for {src.target.arch}; the reference outputs, computed with {ref_text}. "
        "vitdeploy's own tests build this same C++ source for x86-64 against "
        f"Paddle Lite {src.nb.opt_version} (the `paddlelite` wheel's `lite.so`) and run its "
        "`--selfcheck` against an x86 `.nb` of a sample model: it passes (preprocessing within one "
        "grey level of the Python preprocessing, outputs within the parity tolerances). They also "
        "cross-build it for linux-arm64 and linux-armhf with its own `build.sh` against Paddle "
        f"Lite {src.nb.opt_version}'s ARM light library built from source (`vitdeploy lite setup "
        "--arm`) and run `./run.sh --selfcheck` under QEMU user-mode emulation on the sample "
        "model: it passes, and fails (exit 2) once the model's weights are perturbed.")


def render_readme(template: str, src: BundleSource, config: dict[str, Any],
                  tolerance: dict[str, Any], source_kind: str) -> str:
    with_extra = bool(config["lite"]["with_extra"])
    t = src.target
    ctx = {"opt_version": src.nb.opt_version, "wheel_version": wheel_version(src.nb.opt_version),
           "lib_root": (t.archive(with_extra) or "").removesuffix(".tar.gz"),
           "verification": _verification(src, config)}
    values = {
        "model": src.model, "device": t.device, "vitdeploy_version": __version__,
        "target": t.name, "arch": t.arch, "opt_version": src.nb.opt_version,
        "num_classes": str(config["num_classes"]), "precision": src.nb.weight_precision(),
        "count": str(config["selfcheck"]["count"]),
        "lite": _lite(src, with_extra),
        "selfcheck": _selfcheck(config, tolerance, src, source_kind),
        "preprocess": _preprocess(config),
        **t.sections(t, ctx),
    }
    missing = sorted(set(_PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise VitdeployError(f"internal error: README.md.in uses unknown placeholders: {missing}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
