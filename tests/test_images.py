"""Hostile image inputs: non-regular files, decompression bombs, corrupt files, native stderr noise.

Each must end in a clear outcome: one error line (exit 1), or a skip that is counted and listed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, run_cli
from PIL import Image

from vitdeploy.errors import ImageError, VitdeployError
from vitdeploy.models import PreprocessConfig
from vitdeploy.preprocess import (
    DEFAULT_MAX_IMAGE_PIXELS,
    collect_images,
    decode_image,
    decode_image_bytes,
    max_image_pixels,
    preprocess_usable,
)
from vitdeploy.quiet import quiet_stderr

CLI_TIMEOUT = 120  # a CLI run that hangs (a FIFO read) fails the test instead of blocking the suite
NOISE = ("[ WARN", "libpng", "Traceback")


@pytest.fixture
def no_hang():
    """In-process guard: SIGALRM turns a blocking open/read into a test failure."""
    def _alarm(*_: object) -> None:
        raise TimeoutError("blocked on a non-regular file")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _png_bytes(size: int = 40, seed: int = 0) -> bytes:
    import cv2

    rgb = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".png", rgb)[1].tobytes()


def _truncated(path: Path) -> Path:
    data = _png_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt(path: Path) -> Path:
    data = bytearray(_png_bytes())
    at = data.index(b"IDAT") + 4  # garble the compressed pixels: libpng reports "IDAT: ..."
    data[at + 20:at + 40] = b"\xff" * 20
    path.write_bytes(bytes(data))
    return path


def _bomb(path: Path) -> Path:
    """A 30000x30000 1-bit PNG: ~100 KB on disk, 2.7 GB once decoded to RGB."""
    Image.new("1", (30000, 30000)).save(path)
    return path


def _digits(n: int, sample: dict, label: str = "3") -> list[Path]:
    return sorted((ROOT / sample["test_dir"] / label).glob("*.png"))[:n]


def _hostile_folder(root: Path, sample: dict, good: int = 3, corrupt: bool = True) -> Path:
    """An ImageNet-style folder (class "3") with good digits, a FIFO, a directory named x.png
    and, optionally, two corrupt PNGs."""
    cls = root / "3"
    cls.mkdir(parents=True)
    for p in _digits(good, sample):
        shutil.copy(p, cls / p.name)
    os.mkfifo(cls / "fifo.png")
    (cls / "x.png").mkdir()
    if corrupt:
        _truncated(cls / "a_truncated.png")
        _corrupt(cls / "b_corrupt.png")
    return root


# -- the library ---------------------------------------------------------------------------------

def test_non_regular_files_are_refused_unopened(tmp_path, no_hang):
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "x.png").mkdir()
    for name in ("fifo.png", "x.png"):
        with pytest.raises(ImageError, match="is not a regular file"):
            decode_image(tmp_path / name)
    with pytest.raises(ImageError, match="fifo.png is not a regular file"):
        collect_images([tmp_path / "fifo.png"])
    with pytest.raises(ImageError, match="no images found in directory"):  # a named folder is a folder
        collect_images([tmp_path / "x.png"])


def test_collect_images_keeps_regular_files_and_links(tmp_path, no_hang):
    (tmp_path / "ok.png").write_bytes(_png_bytes())
    (tmp_path / "link.png").symlink_to(tmp_path / "ok.png")
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "x.png").mkdir()
    (tmp_path / "x.png" / "inner.png").write_bytes(_png_bytes())
    names = [p.relative_to(tmp_path).as_posix() for p in collect_images([tmp_path])]
    assert names == ["link.png", "ok.png", "x.png/inner.png"]
    assert decode_image(tmp_path / "link.png").shape == (40, 40, 3)


def test_bomb_is_refused_from_its_header(tmp_path):
    bomb = _bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(ImageError) as e:
        decode_image(bomb)
    assert time.perf_counter() - t0 < 5.0  # a guard: decoding 900 Mpixels takes far longer (~1 ms here)
    assert str(e.value) == (f"image too large: {bomb} is 30000x30000 (900000000 pixels, limit "
                            f"{DEFAULT_MAX_IMAGE_PIXELS}); raise --max-image-pixels if it is genuine")


def test_oversized_file_is_not_read_whole(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(_png_bytes(40))
    with open(big, "r+b") as f:
        f.truncate(80 << 20)  # sparse: a valid small header, then 80 MiB of trailing zeros
    with pytest.raises(ImageError, match=r"big.png is 83886080 bytes \(limit 67108864 for 1600 pix"):
        decode_image(big, max_pixels=1600)


def test_pixel_limit_parameter_and_env(tmp_path, monkeypatch):
    img = tmp_path / "ok.png"
    img.write_bytes(_png_bytes(40))
    assert decode_image(img, max_pixels=1600).shape == (40, 40, 3)
    with pytest.raises(ImageError, match=r"40x40 \(1600 pixels, limit 1599\)"):
        decode_image(img, max_pixels=1599)
    monkeypatch.setenv("VITDEPLOY_MAX_IMAGE_PIXELS", "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(ImageError, match="limit 1000"):
        decode_image(img)
    assert decode_image(img, max_pixels=5000).shape == (40, 40, 3)  # the parameter wins
    monkeypatch.setenv("VITDEPLOY_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(VitdeployError, match="VITDEPLOY_MAX_IMAGE_PIXELS must be a positive integer"):
        decode_image(img)


def test_opencv_decode_cannot_exceed_the_limit_either():
    # OpenCV reads its limit once, when cv2 loads: importing vitdeploy.preprocess first sets it
    code = ("import sys, numpy as np, vitdeploy.preprocess, cv2\n"
            "try:\n    cv2.imdecode(np.frombuffer(sys.stdin.buffer.read(), np.uint8), 1)\n"
            "except cv2.error as e:\n    print('refused', 'CV_IO_MAX_IMAGE_PIXELS' in str(e))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    p = subprocess.run([sys.executable, "-c", code], input=_png_bytes(40), capture_output=True,
                       env={**env, "VITDEPLOY_MAX_IMAGE_PIXELS": "1599"}, timeout=60)
    assert p.stdout.decode().strip() == "refused True", p.stderr.decode()


def test_corrupt_png_is_one_line_and_stderr_stays_clean(tmp_path, capfd):
    for path, detail in ((_truncated(tmp_path / "t.png"), "PNG: "),
                         (_corrupt(tmp_path / "c.png"), "PNG: IDAT: ")):
        with pytest.raises(ImageError) as e:
            decode_image(path)
        assert f"{path} is not a decodable image" in str(e.value) and detail in str(e.value)
        assert "\n" not in str(e.value) and "libpng" not in str(e.value)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def _header_prefixes() -> list[tuple[str, bytes]]:
    """Every format Pillow writes here, cut after 0..40 bytes: headers too short for some plugins'
    fixed-size checks (a struct.unpack on 4 bytes) must still be 'not a decodable image'."""
    import io

    img = Image.new("RGB", (8, 8), (10, 200, 30))
    cases = [("empty", b"")]
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "ICO", "PPM", "TGA", "PCX", "DDS",
                "SGI", "IM", "QOI"):
        buf = io.BytesIO()
        try:
            img.save(buf, fmt)
        except (KeyError, OSError, ValueError):  # a format this Pillow cannot write
            continue
        data = buf.getvalue()
        cases += [(f"{fmt}[:{n}]", data[:n]) for n in range(1, 41)]
    return cases


def test_empty_and_truncated_headers_are_not_decodable(tmp_path):
    cases = _header_prefixes()
    assert len(cases) > 200
    for name, data in cases:
        path = tmp_path / "x.img"
        path.write_bytes(data)
        for decode in (lambda: decode_image(path), lambda: decode_image_bytes(data, name)):  # noqa: B023
            try:
                decode()
            except ImageError as e:
                assert "is not a decodable image" in str(e) or "cannot read" in str(e), (name, e)
            except Exception as e:  # anything else is a crash, reported as an internal error
                raise AssertionError(f"{name}: {type(e).__name__}: {e}") from None
    with pytest.raises(ImageError, match=r"empty.jpg is not a decodable image \(an empty file"):
        (tmp_path / "empty.jpg").write_bytes(b"")
        decode_image(tmp_path / "empty.jpg")


def test_cli_empty_image_is_one_line(sample_export, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "short.jpg").write_bytes(b"\xff\xd8")
    tiff = dict(_header_prefixes())["TIFF[:30]"]  # Pillow warns on it: no warning line either
    (tmp_path / "short.tif").write_bytes(tiff)
    for name in ("empty.jpg", "short.jpg", "short.tif"):
        assert_one_line_error(run_cli("predict", sample_export, tmp_path / name, timeout=CLI_TIMEOUT),
                              f"{name} is not a decodable image")


def test_cli_empty_image_on_other_runtimes(sample_onnx, sample_openvino, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    for art in (sample_onnx, sample_openvino):
        assert_one_line_error(run_cli("predict", art, tmp_path / "empty.jpg", timeout=CLI_TIMEOUT),
                              "empty.jpg is not a decodable image")


def test_quiet_stderr_captures_fd2(capfd):
    with quiet_stderr() as native:
        os.write(2, b"[ WARN:0@0.1] native noise\n")
    assert native.text == "[ WARN:0@0.1] native noise\n"
    assert capfd.readouterr().err == ""


def test_preprocess_usable_policies(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(_png_bytes(40))
    bad = _truncated(tmp_path / "bad.png")
    cfg = PreprocessConfig(resize_short=36, crop_size=32, interpolation="bilinear", backend="cv2")
    x, kept, skipped = preprocess_usable([bad, good, bad], cfg)
    assert x.shape == (1, 3, 32, 32) and kept == [1]
    assert [s[0] for s in skipped] == [str(bad)] * 2 and "not a decodable image" in skipped[0][1]
    with pytest.raises(ImageError, match="not a decodable image"):
        preprocess_usable([good, bad], cfg, on_bad_image="stop")
    with pytest.raises(VitdeployError, match="choose one of: skip, stop"):
        preprocess_usable([good], cfg, on_bad_image="ignore")
    x, kept, skipped = preprocess_usable([bad], cfg)
    assert x.shape == (0, 3, 32, 32) and kept == [] and len(skipped) == 1


# -- the command line ----------------------------------------------------------------------------

def _clean(stderr: str) -> None:
    for noise in NOISE:
        assert noise not in stderr, stderr


def test_cli_ignores_fifo_and_directory_named_like_an_image(sample_export, sample, tmp_path):
    folder = _hostile_folder(tmp_path / "data", sample, good=3, corrupt=False)
    r = run_cli("predict", sample_export, folder, "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    assert len(json.loads(r.stdout)) == 3 and r.stderr == ""
    r = run_cli("eval", sample_export, "--data", folder, "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    [res] = json.loads(r.stdout)
    assert res["n"] == 3 and res["skipped"] == [] and r.stderr == ""
    r = run_cli("parity", sample_export, sample_export, "--images", folder, "--batch-sizes", "1,2",
                "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["inputs"] == {"kind": "images", "count": 3, "skipped": []}


def test_cli_named_fifo_is_one_line(sample_export, tmp_path):
    os.mkfifo(tmp_path / "x.png")
    assert_one_line_error(run_cli("predict", sample_export, tmp_path / "x.png", timeout=CLI_TIMEOUT),
                          "x.png is not a regular file")


def test_cli_bomb_is_one_line_and_fast(sample_export, sample, tmp_path):
    bomb = _bomb(tmp_path / "bomb.png")
    t0 = time.perf_counter()
    r = run_cli("predict", sample_export, bomb, timeout=CLI_TIMEOUT)
    assert time.perf_counter() - t0 < 60
    assert_one_line_error(r, "image too large", "30000x30000", "raise --max-image-pixels")
    _clean(r.stderr)
    ok = _digits(1, sample)[0]
    w, h = Image.open(ok).size
    assert_one_line_error(run_cli("predict", sample_export, ok, "--max-image-pixels", w * h - 1,
                                  timeout=CLI_TIMEOUT), "image too large", f"limit {w * h - 1}")


def test_cli_corrupt_images_are_skipped_with_a_count(sample_export, sample, tmp_path):
    folder = _hostile_folder(tmp_path / "data", sample, good=3)
    r = run_cli("predict", sample_export, folder, "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    assert [Path(p["image"]).name for p in json.loads(r.stdout)] == [p.name for p in _digits(3, sample)]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "skipped 2 unusable images (first: " in lines[0]
    assert "a_truncated.png is not a decodable image" in lines[0]
    _clean(r.stderr)

    r = run_cli("eval", sample_export, "--data", folder, "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    [res] = json.loads(r.stdout)
    assert res["n"] == 3 and len(r.stderr.strip().splitlines()) == 1
    assert [Path(s["image"]).name for s in res["skipped"]] == ["a_truncated.png", "b_corrupt.png"]
    assert "(PNG: IDAT: " in res["skipped"][1]["reason"]
    _clean(r.stderr)

    r = run_cli("parity", sample_export, sample_export, "--images", folder, "--batch-sizes", "1",
                "--json", timeout=CLI_TIMEOUT)
    assert r.code == 0, r.stderr
    inputs = json.loads(r.stdout)["inputs"]
    assert inputs["count"] == 3 and len(inputs["skipped"]) == 2
    _clean(r.stderr)


def test_cli_bad_images_stop(sample_export, sample, tmp_path):
    folder = _hostile_folder(tmp_path / "data", sample, good=2)
    for cmd in (("predict", sample_export, folder), ("eval", sample_export, "--data", folder),
                ("parity", sample_export, sample_export, "--images", folder)):
        r = run_cli(*cmd, "--bad-images", "stop", timeout=CLI_TIMEOUT)
        assert_one_line_error(r, "a_truncated.png is not a decodable image")
        _clean(r.stderr)
    lone = _corrupt(tmp_path / "lone.png")
    r = run_cli("predict", sample_export, lone, "--bad-images", "stop", timeout=CLI_TIMEOUT)
    assert_one_line_error(r, "lone.png is not a decodable image", "(PNG: IDAT: ")
    _clean(r.stderr)


def test_cli_unknown_bad_images_value(sample_export, tmp_path):
    assert_one_line_error(run_cli("predict", sample_export, tmp_path, "--bad-images", "ignore"),
                          "unknown --bad-images 'ignore'", "skip, stop")


def test_cli_all_bad_is_an_error(sample_export, tmp_path):
    folder = tmp_path / "bad"
    (folder / "3").mkdir(parents=True)
    _truncated(folder / "3" / "a.png")
    _corrupt(folder / "3" / "b.png")
    (folder / "3" / "c.png").write_text("not an image")
    for cmd in (("predict", sample_export, folder), ("eval", sample_export, "--data", folder),
                ("parity", sample_export, sample_export, "--images", folder)):
        r = run_cli(*cmd, timeout=CLI_TIMEOUT)
        assert_one_line_error(r, "no usable images: all 3 were skipped", "a.png")
        _clean(r.stderr)
