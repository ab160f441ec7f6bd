"""`vitdeploy convert --quantize` end to end: what the manifest records, what parity judges,
and calibration inputs that are refused before any work."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.artifact import sha256

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("to,mode", [("onnx", "int8"), ("onnx", "dynamic-int8"), ("openvino", "int8")])
def test_quantized_artifact_records_and_passes_parity(sample_export, sample, tmp_path, to, mode):
    calib = ["--calib", ROOT / sample["calib_dir"]] if mode == "int8" else []
    out = tmp_path / "q"
    r = run_cli("convert", sample_export, "--to", to, "--quantize", mode, *calib,
                "--eval-data", ROOT / sample["test_dir"], "--max-drop", "0.5", "--out", out, "--json")
    assert r.code == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    q = manifest["quantization"]
    assert q["mode"] == mode and manifest["precision"] == "int8"  # read from the graph
    assert q["accuracy"]["drop_points"] <= 0.5 and q["accuracy"]["n"] == 360
    if mode == "int8":
        assert q["calibration"]["count"] == 200 and len(q["calibration"]["sha256"]) == 64
    r = run_cli("parity", sample_export, out, "--images", ROOT / sample["test_dir"], "--json")
    row = json.loads(r.stdout)["results"][0]
    assert r.code == 0, row
    assert row["artifact_precision"] == "int8" and row["precision"] == "int8"
    assert row["top1_agreement"] >= 0.99


def test_same_inputs_same_bytes(sample_export, sample, tmp_path):
    digests = []
    for name in ("a", "b"):
        r = run_cli("convert", sample_export, "--to", "onnx", "--quantize", "int8", "--calib",
                    ROOT / sample["calib_dir"], "--calib-size", "40", "--out", tmp_path / name)
        assert r.code == 0, r.stderr
        digests.append(sha256(tmp_path / name / "model.onnx"))
    assert digests[0] == digests[1]


def test_bad_calibration_inputs(sample_export, sample, tmp_path):
    out = tmp_path / "o"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    base = ("convert", sample_export, "--to", "onnx", "--quantize", "int8", "--out", out)
    assert_one_line_error(run_cli(*base, "--calib", empty), "holds no images")
    assert_one_line_error(run_cli(*base, "--calib", tmp_path / "missing"), "calibration folder not found")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    assert_one_line_error(run_cli(*base, "--calib", junk), "not a decodable image")
    test_dir = ROOT / sample["test_dir"]
    assert_one_line_error(run_cli(*base, "--calib", test_dir, "--eval-data", test_dir,
                                  "--max-drop", "1"), "overlaps the evaluation data")
    assert_one_line_error(run_cli(*base, "--calib", ROOT / sample["calib_dir"], "--calib-size", "0"),
                          "--calib-size 0")
    assert not out.exists()
