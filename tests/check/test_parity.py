"""`vitdeploy parity`: passes on faithful artifacts, fails (exit 2) on perturbed ones, and errors
(exit 1) on what cannot be compared."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import ROOT, assert_one_line_error, openvino_capabilities, run_cli
from onnx import numpy_helper

from vitdeploy.check.parity import compare


def test_sample_parity_on_real_images(sample_export, sample_onnx, sample_openvino, sample):
    r = run_cli("parity", sample_export, sample_onnx, sample_openvino,
                "--images", ROOT / sample["test_dir"], "--json")
    assert r.code == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] is True
    assert report["reference"]["runtime"] == "paddle" and report["reference"]["precision"] == "fp32"
    assert report["inputs"] == {"kind": "images", "count": 360, "skipped": []}
    assert report["batch_sizes"] == [1, 4, 8]
    for row in report["results"]:
        assert {"artifact", "runtime", "precision", "max_abs", "mean_abs", "cosine_min",
                "top1_agreement", "top5_overlap", "passed"} <= row.keys()
        assert row["top1_agreement"] == 1.0 and row["top5_overlap"] == 1.0
        assert row["cosine_min"] >= 0.99999 and row["batch_max_diff"] <= 1e-4


def test_table_output(sample_export, sample_onnx):
    # what the table shows is checked at fixed widths in tests/test_rendering.py
    r = run_cli("parity", sample_export, sample_onnx, "--batch-sizes", "1,2")
    assert r.code == 0 and r.stdout and r.stderr == ""


def _perturb(src, dst, scale=0.5):
    shutil.copytree(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init)
    noisy = arr + np.random.default_rng(0).normal(0, scale * arr.std(), arr.shape).astype(arr.dtype)
    init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(model, str(dst / "model.onnx"))


def test_perturbed_artifact_fails_with_exit_2(sample_export, sample_onnx, sample, tmp_path):
    bad = tmp_path / "perturbed"
    _perturb(sample_onnx, bad)
    r = run_cli("parity", sample_export, sample_onnx, bad, "--images",
                ROOT / sample["test_dir"] / "0", "--json", "--no-verify")  # edited on purpose
    assert r.code == 2, r.stderr
    rows = json.loads(r.stdout)["results"]
    assert [x["passed"] for x in rows] == [True, False]
    assert any("cosine" in f for f in rows[1]["failures"])


def test_openvino_bf16_is_reported(sample_export, sample_openvino):
    if "BF16" not in openvino_capabilities():
        pytest.skip("this CPU has no bf16 (OpenVINO OPTIMIZATION_CAPABILITIES lacks BF16): "
                    "test_openvino_bf16_fallback_is_said covers it")
    r = run_cli("parity", sample_export, sample_openvino, "--precision", "bf16", "--json")
    row = json.loads(r.stdout)["results"][0]
    assert row["compute_precision"] == "bf16" and row["artifact_precision"] == "fp32"
    assert row["precision"] == "bf16" and row["notes"] == []
    assert row["max_abs"] > 1e-4  # really bf16 arithmetic, not f32
    assert row["tolerance"]["min_cosine"] == 0.995  # the bf16 preset applies
    assert r.code == 0
    strict = run_cli("parity", sample_export, sample_openvino, "--precision", "bf16",
                     "--min-cosine", "0.9999999", "--json")
    assert strict.code == 2


def test_openvino_bf16_fallback_is_said(sample_export, sample_openvino):
    if "BF16" in openvino_capabilities():
        pytest.skip("this CPU computes bf16: the fallback note needs a CPU without it "
                    "(tests/runtimes/test_openvino.py checks the note's logic everywhere)")
    r = run_cli("parity", sample_export, sample_openvino, "--precision", "bf16", "--json")
    row = json.loads(r.stdout)["results"][0]
    assert row["compute_precision"] == "fp32" and row["precision"] == "fp32"
    assert row["notes"] == ["this CPU has no bf16; computed in fp32"]
    assert r.code == 0 and row["cosine_min"] >= 0.99999


def test_errors_exit_1(sample_export, sample_onnx, tmp_path):
    assert_one_line_error(run_cli("parity", sample_export, sample_onnx, "-r", "ort"),
                          "unknown runtime 'ort'", "paddle, onnxruntime, openvino")
    assert_one_line_error(run_cli("parity", sample_onnx, sample_onnx),
                          "no model file runtime 'paddle' can load")
    assert_one_line_error(run_cli("parity", sample_export, tmp_path / "missing"), "not found")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(sample_onnx, corrupt)
    (corrupt / "model.onnx").write_bytes(b"\x08\x07garbage")
    assert_one_line_error(run_cli("parity", sample_export, corrupt), "does not match its sha256")
    assert_one_line_error(run_cli("parity", sample_export, corrupt, "--no-verify"), "cannot load")
    assert_one_line_error(run_cli("parity", sample_export, sample_onnx, "--batch-sizes", "0,4"),
                          "--batch-sizes")


def test_onnx_whose_input_does_not_fit(sample_onnx, tmp_path):
    """A 224-input reference against the 32x32 sample ONNX: one clear line, exit 1."""
    from vitdeploy.models.loader import save_random_checkpoint

    ckpt = save_random_checkpoint("DeiT_tiny_patch16_224", tmp_path / "w.pdparams", num_classes=10)
    assert run_cli("export", "DeiT_tiny_patch16_224", "--weights", ckpt, "--out", tmp_path / "pd").code == 0
    r = run_cli("parity", tmp_path / "pd", sample_onnx, "--num-random", "2")
    assert_one_line_error(r, "rejected a batch of shape [1, 3, 224, 224]")


def test_compare_metrics():
    ref = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    same = compare(ref, ref.copy())
    assert same["max_abs"] == 0 and same["cosine_min"] == pytest.approx(1.0)
    assert same["top1_agreement"] == 1.0
    flipped = compare(ref, ref[:, ::-1].copy())
    assert flipped["top1_agreement"] == 0.0 and flipped["cosine_min"] < 0.8
