"""Preprocessing equals PaddleClas's deploy transforms bit for bit, on every image kind we accept."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from oracle import deploy_preprocess_module
from PIL import Image

from vitdeploy.errors import ImageError
from vitdeploy.models import PreprocessConfig, get_config
from vitdeploy.preprocess import collect_images, decode_image, preprocess_image


def _photo(h=300, w=420, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w))], -1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rgb = Image.fromarray(_photo())
    rgb.save(d / "photo.jpg", quality=90)
    rgb.save(d / "photo.png")
    rgb.save(d / "photo.bmp")
    rgb.save(d / "photo.webp", quality=90)
    rgb.convert("L").save(d / "grey.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "alpha.png")
    rgb.convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(_photo(200, 150)).save(d / "portrait.jpg")
    return d


def _oracle(path, pre: PreprocessConfig) -> np.ndarray:
    m = deploy_preprocess_module()
    ops = [m.DecodeImage(to_rgb=True, channel_first=False),
           m.ResizeImage(resize_short=pre.resize_short, interpolation=pre.interpolation,
                         backend=pre.backend),
           m.CropImage(size=pre.crop_size),
           m.NormalizeImage(scale=pre.scale, mean=list(pre.mean), std=list(pre.std), order=""),
           m.ToCHWImage()]
    x = open(path, "rb").read()
    for op in ops:
        x = op(x)
    return x


CONFIGS = [get_config("DeiT_base_patch16_384").preprocess, get_config("ViT_base_patch16_224").preprocess,
           PreprocessConfig(resize_short=256, crop_size=224, interpolation="bilinear", backend="cv2")]


@pytest.mark.parametrize("pre", CONFIGS, ids=["deit384-pil-bicubic", "vit224", "cv2-bilinear"])
@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo.bmp", "photo.webp", "grey.png",
                                  "alpha.png", "cmyk.jpg", "portrait.jpg"])
def test_matches_paddleclas_deploy_transforms(images, name, pre):
    ours = preprocess_image(images / name, pre)
    theirs = _oracle(images / name, pre)
    assert ours.shape == (3, pre.crop_size, pre.crop_size) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_decode_kinds(images):
    assert decode_image(images / "grey.png").shape == (300, 420, 3)
    assert decode_image(images / "alpha.png").shape == (300, 420, 3)
    # RGB order, not OpenCV's BGR
    px = decode_image(images / "photo.png")[0, -1]
    assert px[0] > px[2]


def test_gif_falls_back_to_pillow(tmp_path):
    Image.fromarray(_photo(64, 64)).save(tmp_path / "a.gif")
    assert decode_image(tmp_path / "a.gif").shape == (64, 64, 3)


def test_not_an_image(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    with pytest.raises(ImageError, match="not a decodable image"):
        decode_image(bad)


def test_collect_images(images, tmp_path):
    assert len(collect_images([images])) == 8
    with pytest.raises(ImageError, match="not found"):
        collect_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        collect_images([tmp_path / "empty"])


def test_predict_cli_rejects_non_image(sample_export, tmp_path):
    bad = tmp_path / "model.pdparams.png"
    bad.write_bytes(b"\x00" * 100)
    assert_one_line_error(run_cli("predict", sample_export, bad), "not a decodable image")
