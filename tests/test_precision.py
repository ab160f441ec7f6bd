"""Artifact precision is read from the graph itself; parity judges with the looser of stored and
computed precision."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_cli

from vitdeploy.precision import PRESETS, looser, tolerance_for
from vitdeploy.runtimes import stored_precision as artifact_precision


def test_looser_and_tolerance_choice():
    assert looser("fp32", "bf16") == "bf16"
    assert looser("int8", "fp32") == "int8" and looser("fp16", "int16") == "fp16"
    assert looser("unknown") == "fp32"
    judged, tol = tolerance_for("int8", "fp32")
    assert judged == "int8" and tol == PRESETS["int8"]
    judged, tol = tolerance_for("fp32", "fp16", {"min_cosine": 0.5})
    assert judged == "fp16" and tol.min_cosine == 0.5 and tol.min_top1_agreement == 0.98


def test_paddle_export_is_fp32(sample_export):
    assert artifact_precision(sample_export / "inference.json") == "fp32"


@pytest.mark.slow
def test_int8_onnx_made_elsewhere_is_judged_int8(sample_export, sample_onnx, tmp_path, sample):
    """An ONNX Runtime dynamic-int8 model made outside vitdeploy (no manifest, no metadata): its
    graph says int8, so parity uses the int8 preset."""
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    d = tmp_path / "int8"
    d.mkdir()
    for f in ("inference.yml", "labels.txt"):
        shutil.copy(sample_onnx / f, d / f)
    quantize_dynamic(str(sample_onnx / "model.onnx"), str(d / "model.onnx"), weight_type=QuantType.QInt8)
    assert artifact_precision(d / "model.onnx") == "int8"
    r = run_cli("parity", sample_export, d, "--images", ROOT / sample["test_dir"] / "1", "--json")
    row = json.loads(r.stdout)["results"][0]
    assert row["artifact_precision"] == "int8" and row["precision"] == "int8"
    assert row["tolerance"]["min_cosine"] == PRESETS["int8"].min_cosine
    assert 0.9 < row["cosine_min"] < 1.0 - 1e-7  # really quantized


@pytest.mark.slow
def test_openvino_fp16_weights_are_stored_fp16(sample_export, sample_openvino, tmp_path):
    out = tmp_path / "ov16"
    assert run_cli("convert", sample_export, "--to", "openvino", "--precision", "fp16",
                   "--out", out).code == 0
    assert artifact_precision(out / "model.xml") == "fp16"
    assert artifact_precision(sample_openvino / "model.xml") == "fp32"
    assert json.loads((out / "manifest.json").read_text())["precision"] == "fp16"
