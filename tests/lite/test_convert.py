"""`vitdeploy convert --to lite` through the managed toolchain, with Lite x86 parity."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.lite import env as lite_env
from vitdeploy.models.loader import save_random_checkpoint


def test_sample_arm8_artifact_and_parity(sample_export, sample_lite_arm8, sample):
    names = sorted(p.name for p in sample_lite_arm8.iterdir())
    assert names == ["inference.yml", "labels.txt", "manifest.json", "model.nb", "model.x86.nb"]
    manifest = json.loads((sample_lite_arm8 / "manifest.json").read_text())
    assert manifest["lite"] == {"arch": "arm8", "x86_twin": "model.x86.nb", "x86_twin_weights": "fp32"}
    assert manifest["conversion"]["passes"]["flatten_xshape"] == 1
    r = run_cli("parity", sample_export, sample_lite_arm8, "--images", ROOT / sample["test_dir"], "--json")
    assert r.code == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)["results"][0]
    assert row["runtime"] == "lite" and row["detail"] == "x86 twin of arm8"
    assert row["top1_agreement"] == 1.0 and row["cosine_min"] >= 0.99999


def test_predict_on_lite(sample_lite_arm8, sample):
    img = sorted((ROOT / sample["test_dir"] / "5").glob("*.png"))[0]
    r = run_cli("predict", sample_lite_arm8, img, "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)[0]["top"][0]["label"] == "5"


@pytest.mark.parametrize("name", ["DeiT_tiny_patch16_224", "LeViT_128S"])
def test_seed_models_lite_x86_parity(name, tmp_path):
    variant = {"distillation": True} if name.startswith("LeViT") else {}
    ckpt = save_random_checkpoint(name, tmp_path / "w.pdparams", seed=5, **variant)
    assert run_cli("export", name, "--weights", ckpt, "--out", tmp_path / "pd").code == 0
    r = run_cli("convert", tmp_path / "pd", "--to", "lite", "--arch", "x86", "--out", tmp_path / "x86")
    assert r.code == 0, r.stderr
    r = run_cli("parity", tmp_path / "pd", tmp_path / "x86", "--batch-sizes", "1,2", "--num-random", "2",
                "--json")
    assert r.code == 0, r.stdout
    assert json.loads(r.stdout)["results"][0]["max_abs"] < 1e-3


@pytest.mark.parametrize("bits,min_cos", [("int8", 0.995), ("int16", 0.99999)])
def test_weight_only_quantization(sample_export, tmp_path, sample, bits, min_cos):
    out = tmp_path / bits
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--quantize", bits,
                "--out", out)
    assert r.code == 0, r.stderr
    info = json.loads(run_cli("inspect", out / "model.nb", "--json").stdout)
    assert info["weights_precision"] == bits and info["all_placed"]
    if bits == "int8":
        fp32_size = (sample_export / "inference.pdiparams").stat().st_size
        assert (out / "model.nb").stat().st_size < 0.5 * fp32_size
    # Lite x86 gives NaN on quantized models: the twin is fp32 with the ARM file's rounded weights
    twin = json.loads(run_cli("inspect", out / "model.x86.nb", "--arch", "x86", "--json").stdout)
    assert twin["weights_precision"] == "fp32"
    r = run_cli("parity", sample_export, out, "--images", ROOT / sample["test_dir"], "--json")
    row = json.loads(r.stdout)["results"][0]
    assert r.code == 0 and row["precision"] == bits, row
    assert row["detail"] == f"x86 twin of arm8, {bits} weights emulated"
    assert min_cos <= row["cosine_min"] < 1.0 - 1e-9 and row["max_abs"] > 1e-5  # really rounded


def test_x86_quantized_is_refused(sample_export, tmp_path):
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "x86", "--quantize", "int16",
                "--out", tmp_path / "o")
    assert_one_line_error(r, "NaN", "--arch arm8")


def test_parity_flags_non_finite_outputs():
    import numpy as np

    from vitdeploy.parity import PRESETS, check, compare

    ref = np.ones((2, 4), np.float32)
    out = ref.copy()
    out[0, 1] = np.nan
    m = compare(ref, out)
    assert m["non_finite"] and m["cosine_min"] == -1.0
    assert check(m, 0.0, PRESETS["fp32"])


@pytest.mark.parametrize("args,needles", [
    (("--arch", "mips"), ("unknown --arch 'mips'", "arm8")),
    (("--quantize", "int4"), ("int4",)),
    (("--arch", "x86", "--fp16"), ("--fp16",)),
])
def test_bad_lite_options(sample_export, tmp_path, args, needles):
    r = run_cli("convert", sample_export, "--to", "lite", *args, "--out", tmp_path / "o")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o").exists()


def test_lite_options_need_lite_target(sample_export, tmp_path):
    assert_one_line_error(run_cli("convert", sample_export, "--to", "onnx", "--arch", "arm8",
                                  "--out", tmp_path / "o"), "--to lite only")


def test_checkpoint_must_match_the_export(sample_export, tmp_path, sample):
    moved = tmp_path / "exp"
    shutil.copytree(sample_export, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"]["path"] = str(tmp_path / "gone.pdparams")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("convert", moved, "--to", "lite", "--out", tmp_path / "o")
    assert_one_line_error(r, "--weights", "gone")
    other = save_random_checkpoint(sample["model"], tmp_path / "other.pdparams", num_classes=10)
    r = run_cli("convert", moved, "--to", "lite", "--weights", other, "--out", tmp_path / "o")
    assert_one_line_error(r, "sha256 differs")
    r = run_cli("convert", moved, "--to", "lite", "--weights", ROOT / sample["weights"],
                "--out", tmp_path / "o")
    assert r.code == 0, r.stderr


def test_toolchain_missing_is_one_clear_line(sample_export, tmp_path, monkeypatch):
    monkeypatch.setenv("VITDEPLOY_LITE_ENV", str(tmp_path / "no-env"))
    r = run_cli("convert", sample_export, "--to", "lite", "--out", tmp_path / "o")
    assert_one_line_error(r, "not set up", "vitdeploy lite setup")


def test_python310_discovery_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("VITDEPLOY_LITE_PYTHON", sys.executable)  # a 3.11: refused
    with pytest.raises(lite_env.LiteToolchainError, match="not a working Python 3.10"):
        lite_env.find_python310()
    monkeypatch.delenv("VITDEPLOY_LITE_PYTHON")
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.10, no uv
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "nopyenv"))
    with pytest.raises(lite_env.LiteToolchainError, match="VITDEPLOY_LITE_PYTHON"):
        lite_env.find_python310()


def test_python310_found_via_env_or_pyenv():
    exe, how = lite_env.find_python310()
    assert how in ("VITDEPLOY_LITE_PYTHON", "PATH", "pyenv", "uv") and os.path.exists(exe)


def test_doctor(tmp_path):
    r = run_cli("doctor", "--json")
    assert r.code == 0
    data = json.loads(r.stdout)
    names = {c["name"]: c for c in data["components"]}
    assert names["lite toolchain"]["ok"] is True
    assert "paddlelite" in names["lite toolchain"]["version"]
    assert {"paddle", "onnxruntime", "openvino", "lite"} == set(data["runtimes"])


def test_fp16_is_refused_when_opt_cannot_do_it(sample_export, tmp_path):
    """The PyPI opt has no ARMv8.2 fp16 kernels: say so instead of writing an fp32 model."""
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--fp16",
                "--out", tmp_path / "o")
    if r.code == 0:  # an opt built with fp16 support: the kernels must really be fp16
        info = json.loads(run_cli("inspect", tmp_path / "o" / "model.nb", "--json").stdout)
        assert any(op["precision"] == "kFP16" for op in info["ops"])
    else:
        assert_one_line_error(r, "--fp16", "fp16")
        assert not (tmp_path / "o").exists()


def test_preflight_report_parsing():
    from vitdeploy.lite.worker import _parse_support

    report = """OPs in the input model include:
                                        OP_name  kARM  kHost
                                         conv2d     Y
                                      expand_v2            Y
                                   my_custom_op
Paddle-Lite does not support this model!"""
    support = _parse_support(report)
    assert support["conv2d"] == ["kARM"] and support["expand_v2"] == ["kHost"]
    assert support["my_custom_op"] == []


def test_arm_artifact_without_twin_explains(sample_lite_arm8, tmp_path, sample):
    d = tmp_path / "arm_only"
    shutil.copytree(sample_lite_arm8, d)
    (d / "model.x86.nb").unlink()
    img = sorted((ROOT / sample["test_dir"] / "2").glob("*.png"))[0]
    assert_one_line_error(run_cli("predict", d, img), "without the x86 twin", "vitdeploy inspect")
    assert_one_line_error(run_cli("predict", d, img, "--runtime", "lite"), "without the x86 twin")


def _legacy_export(name: str, ckpt, dest):
    """A PaddleClas-style legacy export (inference.pdmodel from Paddle 2.6, no inference.yml)."""
    dest.mkdir()
    lite_env.run_worker("export", {"model": name, "weights": str(ckpt), "out": str(dest)})
    for extra in dest.glob("*.info"):
        extra.unlink()
    assert sorted(p.name for p in dest.iterdir()) == ["inference.pdiparams", "inference.pdmodel"]
    return dest


def test_legacy_pdmodel_source_converts_to_onnx(tmp_path):
    import numpy as np

    from vitdeploy.runtimes.onnxruntime import OnnxRuntime
    from vitdeploy.runtimes.paddle import PaddleRuntime

    ckpt = save_random_checkpoint("LeViT_128S", tmp_path / "w.pdparams", distillation=True)
    legacy = _legacy_export("LeViT_128S", ckpt, tmp_path / "legacy")
    r = run_cli("convert", legacy, "--to", "onnx", "--model", "LeViT_128S", "--out", tmp_path / "o")
    assert r.code == 0, r.stderr
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype("float32")
    with PaddleRuntime(legacy / "inference.pdmodel") as a, OnnxRuntime(tmp_path / "o" / "model.onnx") as b:
        assert np.abs(a.predict(x) - b.predict(x)).max() < 1e-4


def test_paddle2onnx_crash_is_one_line(sample, tmp_path):
    """paddle2onnx 2.1 segfaults on Paddle-2.x DeiT programs: the CLI survives and says what to do."""
    legacy = _legacy_export(sample["model"], ROOT / sample["weights"], tmp_path / "legacy")
    r = run_cli("convert", legacy, "--to", "onnx", "--model", sample["model"], "--out", tmp_path / "o")
    if r.code != 0:  # fixed in a later paddle2onnx: then it must simply work
        assert_one_line_error(r, "paddle2onnx failed", "vitdeploy export")
        assert not (tmp_path / "o").exists()
