"""The bundle's C++ demo (vitdeploy/bundles/templates), built for x86 against the Lite toolchain's
lite.so and run here: self-check, logits and preprocessing parity with vitdeploy's Python, error
handling; its scripts under shellcheck; its sources cross-compiled and link-checked for aarch64."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, Run, assert_one_line_error, flip_patch_embed

from vitdeploy.bundles import native_build as native
from vitdeploy.errors import ImageError
from vitdeploy.models.config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from vitdeploy.preprocess import decode_image, preprocess_batch

PIXEL = 1 / 255
TEMPLATE_FILES = ("src/main.cc", "CMakeLists.txt", "build.sh", "run.sh")


def _run(exe: Path, bundle: Path, *args: object) -> Run:
    p = native.run_demo(exe, bundle, *map(str, args))
    return Run(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def demo_exe(tmp_path_factory) -> Path:
    """The demo built once from the templates (a copy: the package's folder stays clean)."""
    try:
        native.lite_headers()
        native.runtime_library_dirs()
        for tool in ("cmake", "c++"):
            if not shutil.which(tool):
                raise native.NativeToolError(f"{tool} not found")
        if not Path("/usr/include/opencv4/opencv2/core.hpp").is_file():
            raise native.NativeToolError("OpenCV headers not found (Debian: libopencv-dev)")
    except native.NativeToolError as e:
        pytest.skip(str(e))
    src = tmp_path_factory.mktemp("native") / "templates"
    shutil.copytree(native.TEMPLATES, src, ignore=shutil.ignore_patterns("build", "README.md*"))
    return native.build(src, src.parent / "build", "linux-x86")


def _config(pre: PreprocessConfig, num_classes: int, target: str = "linux-x86") -> dict:
    return {"format": "vitdeploy-bundle/1", "model": "test", "target": target, "arch": "x86",
            "num_classes": num_classes,
            "input": {"shape": [1, 3, pre.crop_size, pre.crop_size], "layout": "NCHW",
                      "dtype": "float32"},
            "preprocess": {"resize_short": pre.resize_short, "crop_size": pre.crop_size,
                           "interpolation": pre.interpolation, "backend": pre.backend,
                           "scale": pre.scale, "mean": list(pre.mean), "std": list(pre.std),
                           "channel_order": "RGB"},
            "outputs_probabilities": 0, "topk": 5,
            "lite": {"opt_version": "v2.13-rc", "with_extra": 0}}


def make_bundle(dest: Path, nb: Path, artifact: Path, reference: Path, images: list[Path]) -> Path:
    """A linux-x86 bundle as docs/bundle-format.md lays it out (minus manifest/README): ``nb`` as
    model.nb, the artifact's labels and preprocessing, selfcheck bins from ``reference`` run by
    vitdeploy's Predictor (Paddle, as the package writer's reference)."""
    from vitdeploy.artifact import read_artifact_info
    from vitdeploy.predictor import Predictor

    info = read_artifact_info(artifact)
    (dest / "selfcheck" / "images").mkdir(parents=True)
    shutil.copyfile(nb, dest / "model.nb")
    (dest / "labels.txt").write_text("".join(f"{label}\n" for label in info.labels), encoding="utf-8")
    names = [f"selfcheck/images/{i:03d}_{p.name}" for i, p in enumerate(images)]
    for name, p in zip(names, images):
        shutil.copyfile(p, dest / name)
    x = preprocess_batch([dest / n for n in names], info.preprocess)
    with Predictor(reference, runtime="paddle") as pred:
        y = pred.predict_batch(x)
    x.astype("<f4").tofile(dest / "selfcheck" / "inputs.bin")
    y.astype("<f4").tofile(dest / "selfcheck" / "outputs.bin")
    cfg = _config(info.preprocess, int(y.shape[1]))
    cfg["outputs_probabilities"] = int(info.softmax)
    cfg["selfcheck"] = {"count": len(names), "images": names, "inputs": "selfcheck/inputs.bin",
                        "outputs": "selfcheck/outputs.bin", "min_cosine": 0.99999,
                        "min_top1_agreement": 1.0, "max_abs": -1, "pixel_tolerance": PIXEL,
                        "pixel_min_fraction": 0.999,
                        "reference": {"runtime": "paddle", "precision": "fp32"}}
    (dest / "config.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
    return dest


def _heldout(sample: dict) -> list[Path]:
    return sorted((ROOT / sample["test_dir"]).rglob("*.png"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, sample, sample_export, sample_lite_arm8) -> Path:
    """The linux-x86 bundle of the sample, unzipped: written by ``vitdeploy package`` where that
    exists, else assembled here the same way (``make_bundle``)."""
    out = tmp_path_factory.mktemp("bundle")
    try:
        from vitdeploy.bundles.bundle import package
    except ImportError:
        images = _heldout(sample)[::45][:8]  # one or two per class
        return make_bundle(out / "demo", sample_lite_arm8 / "model.x86.nb", sample_lite_arm8,
                           sample_export, images)
    package(sample_export, "linux-x86", out / "demo.zip", images=ROOT / sample["test_dir"])
    with zipfile.ZipFile(out / "demo.zip") as z:
        z.extractall(out)
    return out / "demo"


@pytest.fixture(scope="module")
def bundle_model_dir(tmp_path_factory, bundle, sample_lite_arm8) -> Path:
    """The bundle's own model.nb as a Lite artifact, for vitdeploy's Predictor (runtime lite)."""
    d = tmp_path_factory.mktemp("bundle_model")
    shutil.copyfile(bundle / "model.nb", d / "model.nb")
    for name in ("inference.yml", "labels.txt"):
        shutil.copyfile(sample_lite_arm8 / name, d / name)
    return d


def test_selfcheck_passes(demo_exe, bundle):
    r = _run(demo_exe, bundle, "--selfcheck")
    assert r.code == 0, r.stderr
    assert "selfcheck passed: 8 images" in r.stdout
    js = _run(demo_exe, bundle, "--selfcheck", "--json")
    report = json.loads(js.stdout)
    assert report["selfcheck"] == "passed" and report["min_pixel_fraction"] == 1.0
    assert report["min_cosine"] >= 0.99999 and report["top1_agreement"] == 1.0


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def test_logits_match_python_on_every_heldout_image(demo_exe, bundle, sample, bundle_model_dir,
                                                    tmp_path):
    from vitdeploy.predictor import Predictor

    images = _heldout(sample)
    assert len(images) == sample["test_images"]
    r = _run(demo_exe, bundle, "--json", "--warmup", "0", "--repeats", "1", "--dump-input",
             tmp_path / "in.bin", "--dump-output", tmp_path / "out.bin", *images)
    assert r.code == 0, r.stderr
    with Predictor(bundle_model_dir, runtime="lite") as pred:
        x = preprocess_batch(images, pred.info.preprocess)
        want = pred.predict_batch(x)
        tops = pred.predict_images(images, topk_k=1)
    mine_x = np.fromfile(tmp_path / "in.bin", "<f4").reshape(x.shape)
    assert np.array_equal(mine_x, x)  # Pillow's bicubic reproduced bit for bit
    got = np.fromfile(tmp_path / "out.bin", "<f4").reshape(want.shape)
    cos = _cosines(got, want)
    assert cos.min() >= 0.99999, cos.min()
    assert (got.argmax(1) == want.argmax(1)).all()
    results = json.loads(r.stdout)["results"]
    assert [res["top"][0]["class_id"] for res in results] == [t.top[0].class_id for t in tops]
    assert np.allclose([res["top"][0]["score"] for res in results], [t.top[0].score for t in tops],
                       atol=1e-5)


def test_run_sh_runs_the_demo_in_place(demo_exe, bundle):
    env = {**os.environ, "BUILD_DIR": str(demo_exe.parent), "TARGET": "linux-x86",
           "LD_LIBRARY_PATH": os.pathsep.join(map(str, native.runtime_library_dirs()))}
    p = subprocess.run(["bash", str(bundle / "run.sh"), "--selfcheck"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "selfcheck passed" in p.stdout, p.stderr


FAKE_ADB = r"""#!/usr/bin/env bash
# adb stand-in: the "phone" is $FAKE_DEVICE, commands run here
set -euo pipefail
map() { printf '%s' "${1//\/data\/local\/tmp/$FAKE_DEVICE}"; }
echo "$*" >> "$FAKE_DEVICE.log"
what="$1"; shift
case "$what" in
  shell) sh -c "$(map "$*")" ;;
  push) args=("$@"); dest="${args[-1]}"; unset 'args[-1]'; cp -r "${args[@]}" "$(map "$dest")" ;;
  pull) cp "$(map "$1")" "$2" ;;
esac
"""


def test_run_sh_android_path_with_a_stand_in_adb(demo_exe, bundle, tmp_path):
    """run.sh's adb flow (push the bundle, binary and libraries, run with LD_LIBRARY_PATH there,
    push image arguments, pull --dump-output back), with an adb that runs the x86 demo here."""
    phone = shutil.copytree(bundle, tmp_path / "demo phone")  # a space: quoting is exercised
    cfg = json.loads((phone / "config.json").read_text())
    (phone / "config.json").write_text(json.dumps({**cfg, "target": "android-arm8"}))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "adb").write_text(FAKE_ADB)
    (tmp_path / "bin" / "adb").chmod(0o755)
    (tmp_path / "device").mkdir()
    env = {**os.environ, "BUILD_DIR": str(demo_exe.parent), "FAKE_DEVICE": str(tmp_path / "device"),
           "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "LD_LIBRARY_PATH": os.pathsep.join(map(str, native.runtime_library_dirs()))}
    p = subprocess.run(["bash", str(phone / "run.sh"), "--selfcheck"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "selfcheck passed" in p.stdout, (p.stdout, p.stderr)
    remote = tmp_path / "device" / "demo phone"
    assert (remote / "vitdeploy_demo").is_file() and (remote / "selfcheck" / "inputs.bin").is_file()
    image = tmp_path / "it's an image.png"
    shutil.copyfile(phone / cfg["selfcheck"]["images"][0], image)
    p = subprocess.run(["bash", str(phone / "run.sh"), "--topk", "2", "--dump-output",
                        str(tmp_path / "out.bin"), str(image)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "1_it's an image.png" in p.stdout and p.stdout.count("(class ") == 2
    assert (tmp_path / "out.bin").stat().st_size == 4 * cfg["num_classes"]
    log = (tmp_path / "device.log").read_text()
    assert "LD_LIBRARY_PATH='/data/local/tmp/demo phone'" in log


def test_text_output_has_topk_labels_and_timing(demo_exe, bundle, sample):
    image = _heldout(sample)[0]
    r = _run(demo_exe, bundle, "--topk", "3", "--warmup", "1", "--repeats", "2", "--threads", "2",
             "--power-mode", "3", image)
    assert r.code == 0, r.stderr
    assert r.stdout.count("(class ") == 3 and "over 2 runs" in r.stdout
    assert "1 image(s): avg" in r.stdout and "threads 2, power mode 3" in r.stdout


def _nb_with_flipped_weights(bundle: Path, weights: Path, dest: Path) -> Path:
    """The bundle with the patch embedding's weights sign-flipped (every other value) in
    model.nb: a well-formed model that computes something else."""
    shutil.copytree(bundle, dest)
    flip_patch_embed(dest / "model.nb", weights)
    return dest


def test_perturbed_model_fails_selfcheck(demo_exe, bundle, sample, tmp_path):
    bad = _nb_with_flipped_weights(bundle, ROOT / sample["weights"], tmp_path / "bad")
    r = _run(demo_exe, bad, "--selfcheck")
    assert r.code == 2, (r.stdout, r.stderr)
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("selfcheck failed: selfcheck/images/000_")
    assert "min_cosine" in line or "top-1 agreement" in line


def test_changed_selfcheck_image_fails_the_pixel_bound(demo_exe, bundle, sample, tmp_path):
    bad = shutil.copytree(bundle, tmp_path / "bad")
    cfg = json.loads((bad / "config.json").read_text())
    name = cfg["selfcheck"]["images"][3]
    shutil.copyfile(_heldout(sample)[-1], bad / name)  # another digit
    r = _run(demo_exe, bad, "--selfcheck")
    assert r.code == 2, (r.stdout, r.stderr)
    [line] = r.stderr.strip().splitlines()
    assert name in line and "pixel_min_fraction" in line


# -- preprocessing parity -------------------------------------------------------------------------

def _write(img: np.ndarray, path: Path, **kw) -> Path:
    from PIL import Image

    Image.fromarray(img).save(path, **kw)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample) -> list[Path]:
    """scikit-image's bundled photos in the shapes a user sends: PNG/JPEG, odd sizes, grey,
    16-bit, RGBA, EXIF-rotated; plus the sample's 8x8 digits."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (the test extra) not installed")
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    astro, camera = skdata.astronaut(), skdata.camera()
    out = [_write(astro, d / "astronaut.png"), _write(skdata.coffee(), d / "coffee.jpg", quality=90),
           _write(skdata.chelsea(), d / "chelsea.png"), _write(camera, d / "camera_grey.png"),
           _write(skdata.rocket(), d / "rocket.jpg", quality=85),
           _write(skdata.logo(), d / "logo_rgba.png"),  # RGBA: alpha dropped
           _write(astro[100:357, 50:351], d / "astro_301x257.png"),
           _write(skdata.coffee()[3:260, 7:308], d / "coffee_301x257.jpg", quality=95),
           _write(skdata.hubble_deep_field()[:231, :997], d / "wide_997x231.png"),
           _write(astro[200:253, 300:337], d / "tiny_37x53.png"),  # upscaled ~5x
           _write(skdata.coins(), d / "coins_grey.jpg", quality=90),
           _write(skdata.immunohistochemistry(), d / "ihc.bmp")]
    Image.fromarray(camera.astype(np.uint16) * 257).save(d / "camera_16bit.png")
    out.append(d / "camera_16bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(skdata.chelsea()).save(d / "chelsea_exif6.jpg", exif=exif, quality=92)
    out.append(d / "chelsea_exif6.jpg")
    return out + _heldout(sample)[::90]


PARITY_CONFIGS = [("pil", "bicubic"), ("cv2", "bilinear"), ("pil", "bilinear"), ("pil", "nearest"),
                  ("pil", "lanczos"), ("cv2", "bicubic"), ("cv2", "area"), ("cv2", "nearest")]


@pytest.mark.parametrize(("backend", "interpolation"), PARITY_CONFIGS)
def test_preprocessing_matches_python(demo_exe, photos, tmp_path, backend, interpolation):
    pre = PreprocessConfig(256, 224, interpolation, backend, IMAGENET_MEAN, IMAGENET_STD)
    (tmp_path / "config.json").write_text(json.dumps(_config(pre, 1000)))
    r = _run(demo_exe, tmp_path, "--preprocess-only", "--dump-input", tmp_path / "in.bin", *photos)
    assert r.code == 0, r.stderr
    want = preprocess_batch(photos, pre)
    got = np.fromfile(tmp_path / "in.bin", "<f4").reshape(want.shape)
    # pixel units: normalized difference times the channel's std
    diff = np.abs(got - want) * np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    within = (diff <= PIXEL + 1e-6).reshape(len(photos), -1).mean(1)
    worst = {p.name: f for p, f in zip(photos, within) if f < 0.999}
    assert not worst, (worst, float(diff.max()))
    if backend == "pil":  # Pillow's resampling reproduced exactly, not approximately
        pngs = [i for i, p in enumerate(photos) if p.suffix == ".png"]
        assert diff[pngs].max() == 0.0


def test_exif_orientation_is_applied_like_python(demo_exe, photos, tmp_path):
    """Python's decode (cv2.imdecode, IMREAD_COLOR) applies EXIF orientation; the demo's
    cv::imread must too: its preprocessing of the rotated JPEG matches Python's, not the raw one."""
    from PIL import Image

    [rotated] = [p for p in photos if p.name == "chelsea_exif6.jpg"]
    assert decode_image(rotated).shape[:2] == (451, 300)  # Python rotated it: portrait now
    pre = PreprocessConfig(256, 224, "bicubic", "pil", IMAGENET_MEAN, IMAGENET_STD)
    (tmp_path / "config.json").write_text(json.dumps(_config(pre, 1000)))
    r = _run(demo_exe, tmp_path, "--preprocess-only", "--dump-input", tmp_path / "in.bin", rotated)
    assert r.code == 0, r.stderr
    got = np.fromfile(tmp_path / "in.bin", "<f4").reshape(1, 3, 224, 224)
    raw = tmp_path / "raw.png"  # the stored (unrotated) pixels
    _write(np.asarray(Image.open(rotated).convert("RGB")), raw)
    assert np.abs(got - preprocess_batch([rotated], pre)).max() < 0.05
    assert np.abs(got - preprocess_batch([raw], pre)).mean() > 0.1


# -- errors: one line on stderr, exit 1 -----------------------------------------------------------

def test_bad_inputs_are_one_line_errors(demo_exe, bundle, sample, tmp_path):
    image = _heldout(sample)[0]
    assert_one_line_error(_run(demo_exe, bundle, tmp_path / "missing.png"), "image not found")
    (tmp_path / "notes.png").write_text("not an image\n")
    assert_one_line_error(_run(demo_exe, bundle, tmp_path / "notes.png"), "not a decodable image")
    # truncated files: libpng/libjpeg complain on stderr; the demo still says one line
    from PIL import Image

    photo = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg"):
        Image.fromarray(photo).save(tmp_path / f"whole{suffix}")
        data = (tmp_path / f"whole{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[:len(data) // 2])
        assert_one_line_error(_run(demo_exe, bundle, tmp_path / f"cut{suffix}"),
                              "not a decodable image")
        with pytest.raises(ImageError):  # as vitdeploy's Python does
            decode_image(tmp_path / f"cut{suffix}")
    assert_one_line_error(_run(demo_exe, bundle, "--threads", "0", image), "--threads")
    assert_one_line_error(_run(demo_exe, bundle, "--frobnicate", image), "unknown option")
    assert_one_line_error(_run(demo_exe, tmp_path / "nowhere", image), "config not found")

    broken = shutil.copytree(bundle, tmp_path / "broken")
    good = json.loads((bundle / "config.json").read_text())
    cases = [("{\"format\": ", "not valid JSON"), ("[1, 2]", "bad config"),
             (json.dumps({**good, "format": "other/2"}), "vitdeploy-bundle/1"),
             (json.dumps({**good, "preprocess": {**good["preprocess"], "mean": [0.5]}}),
              "preprocess.mean"),
             (json.dumps({k: v for k, v in good.items() if k != "num_classes"}), "num_classes"),
             (json.dumps({**good, "preprocess": {**good["preprocess"], "interpolation": "cubic"}}),
              "interpolation")]
    for text, needle in cases:
        (broken / "config.json").write_text(text)
        assert_one_line_error(_run(demo_exe, broken, image), "bad config", needle)
    (broken / "config.json").write_text(json.dumps(good))

    (broken / "model.nb").write_text("garbage")
    assert_one_line_error(_run(demo_exe, broken, image), "not a Paddle Lite naive-buffer model")
    data = bytearray((bundle / "model.nb").read_bytes())
    data[26:4096] = np.random.default_rng(0).integers(0, 256, 4070, dtype=np.uint8).tobytes()
    (broken / "model.nb").write_bytes(bytes(data))  # header intact, topology scrambled
    assert_one_line_error(_run(demo_exe, broken, image), "cannot load model")
    (broken / "model.nb").unlink()
    assert_one_line_error(_run(demo_exe, broken, image), "model not found")


# -- scripts and aarch64 --------------------------------------------------------------------------

def test_templates_are_complete():
    for rel in TEMPLATE_FILES:
        assert (native.TEMPLATES / rel).is_file(), rel
    for rel in ("build.sh", "run.sh"):
        assert (native.TEMPLATES / rel).stat().st_mode & 0o111, f"{rel} is not executable"
    text = "".join((native.TEMPLATES / rel).read_text() for rel in TEMPLATE_FILES)
    assert "/work/" not in text and "/root/" not in text and "/home/" not in text


def test_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    p = subprocess.run(["shellcheck", "build.sh", "run.sh"], cwd=native.TEMPLATES,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_scripts_say_what_is_missing(tmp_path):
    shutil.copy(native.TEMPLATES / "build.sh", tmp_path)
    shutil.copy(native.TEMPLATES / "run.sh", tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"target": "android-arm8"}))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    p = subprocess.run(["bash", "build.sh"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 1 and "PADDLE_LITE_DIR" in p.stderr
    (tmp_path / "lite" / "include").mkdir(parents=True)
    (tmp_path / "lite" / "include" / "paddle_api.h").write_text("")
    env["PADDLE_LITE_DIR"] = str(tmp_path / "lite")
    p = subprocess.run(["bash", "build.sh"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 1 and "ANDROID_NDK" in p.stderr
    p = subprocess.run(["bash", "run.sh", "--selfcheck"], cwd=tmp_path, env=env, capture_output=True,
                       text=True)
    assert p.returncode == 1 and "build.sh first" in p.stderr


def test_aarch64_cross_compile_and_link_check(tmp_path):
    if not shutil.which("aarch64-linux-gnu-g++"):
        pytest.skip("aarch64-linux-gnu-g++ not installed (Debian: g++-aarch64-linux-gnu)")
    try:
        report = native.cross_check_aarch64(native.TEMPLATES, tmp_path)
    except native.NativeToolError as e:
        pytest.skip(str(e))
    assert report["sources"] == ["main.cc"] and not report["warnings"], report["warnings"]
    lite = " ".join(report["paddle_lite_symbols"])
    for api in ("CreatePaddlePredictor<paddle::lite_api::MobileConfig>", "set_model_from_file",
                "set_threads", "set_power_mode", "Tensor::Resize", "mutable_data<float>",
                "data<float>", "Tensor::shape"):
        assert api in lite, api
    opencv = " ".join(report["opencv_symbols"])
    for api in ("cv::imread", "cv::resize", "cv::cvtColor", "cv::FileStorage"):
        assert api in opencv, api
    # after linking libc/libstdc++ for real, only Paddle Lite's and OpenCV's symbols are left
    assert report["unresolved_after_link"]
    elf = Path(report["executable"]).read_bytes()[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
