"""``vitdeploy package``: the bundle against docs/bundle-format.md (layout, config.json, manifest,
determinism), its README, every bad input as one line with nothing written, and one bundle built
and self-checked here (linux-x86)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, assert_one_line_error, flip_patch_embed, invoke, run_cli

from vitdeploy.bundles import DEVICES, get_device, package, verify_bundle
from vitdeploy.bundles.readme import wheel_version
from vitdeploy.bundles.selfcheck import pick_images, synthetic_images
from vitdeploy.errors import ArtifactError
from vitdeploy.lite.naive_buffer import read_nb
from vitdeploy.models.config import PreprocessConfig
from vitdeploy.precision import PRESETS

REQUIRED = {"model.nb", "labels.txt", "config.json", "selfcheck/inputs.bin", "selfcheck/outputs.bin",
            "src/main.cc", "CMakeLists.txt", "build.sh", "run.sh", "README.md", "manifest.json"}


def _members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest / zip_path.stem


def _no_null_or_bool(data, where="config") -> None:
    assert data is not None and not isinstance(data, bool), where
    if isinstance(data, dict):
        for k, v in data.items():
            _no_null_or_bool(v, f"{where}.{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _no_null_or_bool(v, f"{where}[{i}]")


@pytest.fixture(scope="module")
def android(sample_export, tmp_path_factory):
    """The library call, from the sample export, with synthetic self-check images."""
    out = tmp_path_factory.mktemp("pkg-a") / "demo-android-arm8.zip"
    return package(sample_export, "android-arm8", out)


@pytest.fixture(scope="module")
def x86(sample_export, sample, tmp_path_factory):
    """The CLI as a user runs it, from the sample export, with the held-out images."""
    out = tmp_path_factory.mktemp("pkg-x") / "digits-x86.zip"
    r = run_cli("package", sample_export, "--target", "linux-x86", "--out", out,
                "--images", ROOT / sample["test_dir"], "--json", timeout=600)
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


# --- fast: the registry, the synthetic images, the wheel's package data ------------------------

def test_targets_and_release_archives():
    assert list(DEVICES) == ["android-arm8", "android-armv7", "linux-arm64", "linux-armhf",
                             "linux-x86"]
    assert [get_device(t).arch for t in DEVICES] == ["arm8", "armv7", "arm8", "armv7", "x86"]
    a8 = get_device("android-arm8")
    assert a8.archive(True) == "inference_lite_lib.android.armv8.clang.c++_shared.with_extra.with_cv.tar.gz"
    assert get_device("android-armv7").archive(False) == \
        "inference_lite_lib.android.armv7.clang.c++_shared.with_cv.tar.gz"
    assert get_device("linux-arm64").archive(True) == \
        "inference_lite_lib.armlinux.armv8.gcc.with_extra.with_cv.tar.gz"
    assert get_device("linux-armhf").archive(True) == \
        "inference_lite_lib.armlinux.armv7hf.gcc.with_extra.with_cv.tar.gz"
    assert get_device("linux-x86").archive(True) is None  # links the paddlelite wheel's lite.so
    assert a8.archive_url("v2.13-rc", True) == ("https://github.com/PaddlePaddle/Paddle-Lite/releases/"
                                                "download/v2.13-rc/" + a8.archive(True))
    assert wheel_version("v2.13-rc") == "2.13rc0" and wheel_version("v2.12") == "2.12"


def test_synthetic_images_are_odd_sized_larger_and_reproducible(tmp_path):
    import cv2

    pre = PreprocessConfig(resize_short=256, crop_size=224)
    first = synthetic_images(tmp_path / "a", 4, pre)
    again = synthetic_images(tmp_path / "b", 4, pre)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    for p in first:
        h, w = cv2.imread(str(p)).shape[:2]
        assert h % 2 == 1 and w % 2 == 1 and min(h, w) > pre.resize_short, (p.name, w, h)


def test_selfcheck_images_are_spread_and_readable_by_opencv_and_vitdeploy(tmp_path):
    from PIL import Image

    pre = PreprocessConfig(resize_short=32, crop_size=32)
    pixels = np.zeros((40, 48, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a_anim.gif")  # Pillow reads it, OpenCV does not
    (tmp_path / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for name in ("c.png", "d.png", "e.png"):
        Image.fromarray(pixels).save(tmp_path / name)
    kept, skipped = pick_images(tmp_path, 2, pre)  # candidates a, c (spread), then b, d, e
    assert [p.name for p in kept] == ["c.png", "d.png"]
    assert [Path(p).name for p, _ in skipped] == ["a_anim.gif", "b_broken.png"]
    assert "OpenCV" in skipped[0][1]


def test_templates_ship_in_the_wheel():
    """pyproject's package-data globs cover every template file and the vendored Lite headers
    (setuptools ships only those)."""
    import fnmatch

    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["vitdeploy.bundles"]
    root = ROOT / "vitdeploy" / "bundles"
    files = [p.relative_to(root).as_posix() for d in ("templates", "third_party")
             for p in (root / d).rglob("*")
             if p.is_file() and "build" not in p.parts and "__pycache__" not in p.parts]
    assert "templates/README.md.in" in files and "templates/src/main.cc" in files
    assert "third_party/paddle_lite_v2.13rc/include/paddle_api.h" in files
    for f in files:  # setuptools' "**" spans folders, like fnmatch's "*"
        assert any(fnmatch.fnmatch(f, g) for g in globs), f


# --- fast: bad input is one line, exit 1, and nothing is written ----------------------------------

def _fake_artifact(sample_export: Path, dest: Path, manifest: dict, model_file: str) -> Path:
    dest.mkdir(parents=True)
    for name in ("inference.yml", "labels.txt"):
        shutil.copyfile(sample_export / name, dest / name)
    (dest / model_file).write_bytes(b"not a real model")
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


@pytest.mark.parametrize("case", ["unknown-target", "other-arch", "onnx", "exists", "inside",
                                  "suffix", "count-low", "count-high", "missing", "interpolation"])
def test_bad_input_is_one_line_and_writes_nothing(case, sample_export, tmp_path):
    out = tmp_path / "out" / "bundle.zip"
    out.parent.mkdir()
    args = [sample_export, "--target", "android-arm8", "--out", out]
    needles: tuple[str, ...]
    if case == "unknown-target":
        args[2], needles = "ios-arm8", ("ios-arm8", "android-arm8, android-armv7, linux-arm64, "
                                        "linux-armhf, linux-x86")
    elif case == "other-arch":
        lite = _fake_artifact(sample_export, tmp_path / "lite", {"format": "lite",
                              "lite": {"arch": "arm8"}}, "model.nb")
        args = [lite, "--target", "linux-x86", "--out", out, "--no-verify"]
        needles = ("arm8 artifact", "needs a .nb built for x86", "package the export instead")
    elif case == "onnx":
        onnx = _fake_artifact(sample_export, tmp_path / "onnx", {"format": "onnx"}, "model.onnx")
        args[0], needles = onnx, ("onnx artifact", "Lite .nb built for arm8", "package the export")
        args.append("--no-verify")
    elif case == "exists":
        out.write_bytes(b"keep me")
        needles = ("exists", "--force")
    elif case == "inside":
        args[4] = sample_export / "bundle.zip"
        needles = ("inside the artifact",)
    elif case == "suffix":
        args[4] = out.with_suffix(".tar")
        needles = ("must name a .zip file",)
    elif case in ("count-low", "count-high"):
        args += ["--selfcheck-count", "0" if case == "count-low" else "65"]
        needles = ("--selfcheck-count", "out of range", "1..64")
    elif case == "missing":
        args[0], needles = tmp_path / "nope", ("artifact directory not found",)
    else:  # preprocessing the C++ demo does not reproduce
        bad = tmp_path / "lanczos"
        shutil.copytree(sample_export, bad)
        cfg = yaml.safe_load((bad / "inference.yml").read_text())
        cfg["PreProcess"]["transform_ops"][0]["ResizeImage"]["interpolation"] = "lanczos"
        (bad / "inference.yml").write_text(yaml.safe_dump(cfg))
        args = [bad, "--target", "android-arm8", "--out", out, "--no-verify"]
        needles = ("pil lanczos", "bicubic")
    before = {p: p.read_bytes() for p in out.parent.iterdir()}
    export_before = sorted(p.name for p in sample_export.iterdir())
    r = invoke("package", *args)
    assert_one_line_error(r, *needles)
    assert {p: p.read_bytes() for p in out.parent.iterdir()} == before  # no zip, no temp file
    assert sorted(p.name for p in sample_export.iterdir()) == export_before


def test_bad_input_from_a_real_process(tmp_path, sample_export):
    """One end-to-end refusal: the real exit code and stderr."""
    r = run_cli("package", sample_export, "--target", "android-arm9", "--out", tmp_path / "b.zip")
    assert_one_line_error(r, "unknown --target", "available: android-arm8")
    assert not any(tmp_path.iterdir())


# --- slow: real bundles -------------------------------------------------------------------------

@pytest.mark.slow
def test_android_bundle_layout_and_zip_rules(android):
    zip_path = Path(android.path)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert all(n.startswith("demo-android-arm8/") for n in names)
    rel = {n.split("/", 1)[1] for n in names}
    assert REQUIRED <= rel
    images = sorted(n for n in rel if n.startswith("selfcheck/images/"))
    assert len(images) == 8 and images[0] == "selfcheck/images/000_synthetic_00.png"
    assert rel - REQUIRED - set(images) <= {"src/" + p.name for p in
                                            (ROOT / "vitdeploy/bundles/templates/src").iterdir()}
    for i in infos:
        assert i.date_time == (1980, 1, 1, 0, 0, 0) and i.extra == b"" and i.comment == b""
        assert i.compress_type == zipfile.ZIP_DEFLATED
        assert (i.external_attr >> 16) & 0o777 == (0o755 if i.filename.endswith(".sh") else 0o644)
    assert android.files == sorted((n, len(d)) for n, d in
                                   ((k.split("/", 1)[1], v) for k, v in _members(zip_path).items()))
    assert android.size == zip_path.stat().st_size


@pytest.mark.slow
def test_android_config_follows_the_contract(android, sample_export):
    from vitdeploy.artifact import read_artifact_info
    from vitdeploy.predictor import Predictor

    m = _members(Path(android.path))
    cfg = json.loads(m["demo-android-arm8/config.json"])
    _no_null_or_bool(cfg)
    assert list(cfg) == ["format", "model", "target", "arch", "num_classes", "input", "preprocess",
                         "outputs_probabilities", "topk", "lite", "selfcheck"]
    pre = read_artifact_info(sample_export).preprocess
    nb = m["demo-android-arm8/model.nb"]
    assert cfg["format"] == "vitdeploy-bundle/1" and cfg["model"] == "DeiT_digits_patch8_32"
    assert (cfg["target"], cfg["arch"], cfg["num_classes"]) == ("android-arm8", "arm8", 10)
    assert cfg["input"] == {"shape": [1, 3, 32, 32], "layout": "NCHW", "dtype": "float32"}
    assert cfg["preprocess"] == {**pre.to_dict(), "channel_order": "RGB"}
    assert cfg["outputs_probabilities"] == 0 and cfg["topk"] == 5
    assert cfg["lite"] == {"opt_version": nb[2:18].split(b"\0")[0].decode(), "with_extra": 1}
    sc = cfg["selfcheck"]
    fp32 = PRESETS["fp32"]
    assert (sc["min_cosine"], sc["min_top1_agreement"], sc["max_abs"]) == \
        (fp32.min_cosine, fp32.min_top1_agreement, -1)
    assert (sc["pixel_tolerance"], sc["pixel_min_fraction"]) == (1 / 255, 0.999)
    assert sc["reference"]["runtime"] == "paddle" and sc["reference"]["precision"] == "fp32"
    assert sc["count"] == len(sc["images"]) == 8
    x = np.frombuffer(m["demo-android-arm8/selfcheck/inputs.bin"], "<f4").reshape(8, 3, 32, 32)
    y = np.frombuffer(m["demo-android-arm8/selfcheck/outputs.bin"], "<f4").reshape(8, 10)
    with Predictor(sample_export) as pred:  # the reference is Paddle Inference on the export
        np.testing.assert_allclose(y, pred.predict_batch(x), atol=1e-5)
    labels = m["demo-android-arm8/labels.txt"].decode("utf-8")
    assert labels == (sample_export / "labels.txt").read_text(encoding="utf-8")
    assert android.tolerance["precision"] == "fp32" and android.with_extra


@pytest.mark.slow
def test_manifest_verifies_and_tampering_is_caught(android, sample_export, tmp_path):
    zip_path = Path(android.path)
    manifest = verify_bundle(zip_path)
    export_manifest = json.loads((sample_export / "manifest.json").read_text())
    assert manifest["target"] == "android-arm8" and manifest["arch"] == "arm8"
    assert manifest["model"] == "DeiT_digits_patch8_32"
    assert manifest["source"]["manifest_sha256"] == export_manifest["manifest_sha256"]
    assert manifest["lite"]["opt_version"] == android.opt_version
    assert set(manifest["files"]) == {f for f, _ in android.files} - {"manifest.json"}
    # no absolute path, no temp dir name, no timestamp in any text file
    for name, data in _members(zip_path).items():
        if name.endswith((".json", ".md", ".txt")):
            text = data.decode("utf-8")
            for bad in (str(zip_path.parent), str(sample_export), "vitdeploy-package-", str(ROOT)):
                assert bad not in text, (name, bad)
    bundle = _unzip(zip_path, tmp_path / "x")
    assert verify_bundle(bundle)["target"] == "android-arm8"
    assert verify_bundle(bundle.parent)["target"] == "android-arm8"
    (bundle / "labels.txt").write_text("tampered\n")
    with pytest.raises(ArtifactError, match="labels.txt does not match its sha256"):
        verify_bundle(bundle)
    (bundle / "labels.txt").unlink()
    with pytest.raises(ArtifactError, match="labels.txt .* is missing"):
        verify_bundle(bundle)
    (bundle / "extra.json").write_text("{}")
    with pytest.raises(ArtifactError, match="extra.json is not listed"):
        verify_bundle(bundle)
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(bad_zip, "w") as dst:
        for i in src.infolist():
            data = src.read(i)
            dst.writestr(i, data.replace(b"0\n", b"9\n") if i.filename.endswith("labels.txt") else data)
    with pytest.raises(ArtifactError, match="labels.txt does not match"):
        verify_bundle(bad_zip)


@pytest.mark.slow
def test_same_inputs_give_the_same_zip_bytes(android, sample_export, tmp_path):
    """Another temp dir, a copy of the export with new mtimes, and the CLI instead of the library:
    the same bytes (opt's uninitialised header bytes are normalised)."""
    copy = tmp_path / "elsewhere" / "export-copy"
    copy.mkdir(parents=True)
    for p in sample_export.iterdir():
        shutil.copyfile(p, copy / p.name)  # copyfile: fresh mtimes
    out = tmp_path / "other" / "demo-android-arm8.zip"
    r = run_cli("package", copy, "--target", "android-arm8", "--out", out, "--json", timeout=600)
    assert r.code == 0, r.stderr
    assert out.read_bytes() == Path(android.path).read_bytes()
    # what the table shows: every file with its size, the totals, the digest
    data = json.loads(r.stdout)
    assert [name for name, _ in data["files"]] == [name for name, _ in android.files]
    assert "model.nb" in [name for name, _ in data["files"]] and data["size"] == out.stat().st_size
    assert data["sha256"] == android.sha256


@pytest.mark.slow
def test_android_readme_names_the_lite_release(android):
    m = _members(Path(android.path))
    readme = m["demo-android-arm8/README.md"].decode("utf-8")
    archive = "inference_lite_lib.android.armv8.clang.c++_shared.with_extra.with_cv.tar.gz"
    assert "{{" not in readme
    assert android.opt_version == "v2.13-rc" and f"Paddle Lite {android.opt_version}" in readme
    assert archive in readme
    assert f"https://github.com/PaddlePaddle/Paddle-Lite/releases/download/v2.13-rc/{archive}" in readme
    assert "could not confirm this exact file" in readme  # said, not guessed silently
    assert "with_extra" in readme and "layer_norm" in readme
    for needle in ("opencv-4.1.0-android-sdk.zip", "ANDROID_NDK=", "PADDLE_LITE_DIR=",
                   "./run.sh --selfcheck", "resize so that the short side is 32", "## Verification",
                   "Not verified: running on a phone", "cosine ≥ 0.99999"):
        assert needle in readme, needle


@pytest.mark.slow
def test_linux_x86_bundle_from_the_export(x86, sample):
    zip_path = Path(x86["path"])
    m = _members(zip_path)
    top = zip_path.stem
    nb = zip_path.parent / "model.nb"
    nb.write_bytes(m[f"{top}/model.nb"])
    info = read_nb(nb)
    assert not info.unplaced("x86") and any(op.target == "kX86" for op in info.ops)
    cfg = json.loads(m[f"{top}/config.json"])
    assert (cfg["target"], cfg["arch"], cfg["lite"]["opt_version"]) == ("linux-x86", "x86", "v2.13-rc")
    found = sorted((ROOT / sample["test_dir"]).rglob("*.png"))
    first = [found[i * len(found) // 8] for i in range(8)]  # spread: one per class folder or so
    assert len({p.parent for p in first}) >= 7
    assert cfg["selfcheck"]["images"] == [f"selfcheck/images/{i:03d}_{p.name}"
                                          for i, p in enumerate(first)]
    for i, p in enumerate(first):  # bytes as given
        assert m[f"{top}/selfcheck/images/{i:03d}_{p.name}"] == p.read_bytes()
    readme = m[f"{top}/README.md"].decode("utf-8")
    assert "paddlelite==2.13rc0" in readme and "x86_sdk" in readme and "v2.13-rc" in readme
    assert x86["selfcheck_source"] == "images" and x86["with_extra"] is True
    verify_bundle(zip_path)


@pytest.mark.slow
def test_lite_artifact_of_the_target_arch_is_used_as_it_is(sample_lite_arm8, tmp_path):
    result = package(sample_lite_arm8, "linux-arm64", tmp_path / "board.zip", selfcheck_count=2)
    with zipfile.ZipFile(result.path) as zf:
        nb = zf.read("board/model.nb")
    src = (sample_lite_arm8 / "model.nb").read_bytes()
    assert nb[18:] == src[18:] and nb[:11] == src[:11]  # only opt's header padding is zeroed
    with zipfile.ZipFile(result.path) as zf:
        readme = zf.read("board/README.md").decode()
    assert "inference_lite_lib.armlinux.armv8.gcc.with_extra.with_cv.tar.gz" in readme
    assert "confirmed in the v2.13-rc release" in readme
    r = invoke("package", sample_lite_arm8, "--target", "android-armv7", "--out", tmp_path / "v7.zip")
    assert_one_line_error(r, "Paddle Lite arm8 artifact", "built for armv7", "package the export")


@pytest.mark.slow
def test_bundle_scripts_pass_shellcheck(android, tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (Debian: apt-get install shellcheck)")
    bundle = _unzip(Path(android.path), tmp_path)
    p = subprocess.run(["shellcheck", bundle / "build.sh", bundle / "run.sh"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.slow
def test_linux_x86_bundle_builds_and_passes_its_selfcheck(x86, tmp_path):
    """The bundle as shipped: unzipped, built with its own build.sh, self-checked (exit 0)."""
    from vitdeploy.bundles import native_build as native

    if not hasattr(native, "build") or not hasattr(native, "run_demo"):
        pytest.skip("vitdeploy.bundles.native_build has no build/run_demo")
    bundle = _unzip(Path(x86["path"]), tmp_path)
    try:
        exe = native.build(bundle, tmp_path / "build", "linux-x86")
    except native.NativeToolError as e:
        pytest.skip(str(e))
    p = native.run_demo(exe, bundle, "--selfcheck")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "selfcheck passed: 8 images" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target,abi", [("linux-arm64", "armv8"), ("linux-armhf", "armv7")])
def test_arm_linux_bundle_runs_on_the_arm_kernels(sample, sample_export, tmp_path, target, abi):
    """The ARM Linux bundle, unzipped: its unchanged C++ source cross-built by its own build.sh
    against the light library built from source ('vitdeploy lite setup --arm ABI'), then
    'run.sh --selfcheck' under QEMU: passes; a perturbed model.nb fails it (exit 2)."""
    from vitdeploy.bundles import native_build as native
    from vitdeploy.bundles import sysroot
    from vitdeploy.lite import arm

    st = arm.status(abi)
    if not st.ready:
        pytest.skip(f"ARM kernels ({abi}) {st.problem}: 'make arm-check' builds them")
    try:
        sysroot.sysroot(target)  # Debian's OpenCV for the target, unpacked privately (debootstrap)
    except sysroot.SysrootError as e:
        pytest.skip(f"no {target} sysroot for the bundle's OpenCV: {e}")
    result = package(sample_export, target, tmp_path / "board.zip",
                     images=ROOT / sample["test_dir"])
    bundle = _unzip(Path(result.path), tmp_path)
    lib = Path(st.dir)
    native.build(bundle, tmp_path / "build", target, paddle_lite_dir=lib, timeout=1800)
    p = native.run_bundle(bundle, tmp_path / "build", target, "--selfcheck",
                          paddle_lite_dir=lib)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "selfcheck passed: 8 images" in p.stdout
    img = sorted((ROOT / sample["test_dir"] / "4").glob("*.png"))[0]
    p = native.run_bundle(bundle, tmp_path / "build", target, str(img), paddle_lite_dir=lib)
    top1 = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("1. "))
    assert p.returncode == 0 and top1.endswith("(class 4)"), p.stdout + p.stderr
    flip_patch_embed(bundle / "model.nb", ROOT / sample["weights"])
    p = native.run_bundle(bundle, tmp_path / "build", target, "--selfcheck",
                          paddle_lite_dir=lib)
    assert p.returncode == 2, p.stdout + p.stderr
