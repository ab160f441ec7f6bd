"""`vitdeploy convert` to ONNX and OpenVINO IR: real paddle2onnx, onnx checker, OpenVINO."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli

from vitdeploy.artifact import read_artifact_info, sha256
from vitdeploy.models.loader import save_random_checkpoint

pytestmark = pytest.mark.slow  # real conversions: make test, not make check


def test_onnx_artifact(sample_onnx, sample_export):
    names = sorted(p.name for p in sample_onnx.iterdir())
    assert names == ["inference.yml", "labels.txt", "manifest.json", "model.onnx"]
    model = onnx.load(str(sample_onnx / "model.onnx"))
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "x" and out.name == "logits"
    assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
    ops = [n.op_type for n in model.graph.node]
    assert "LayerNormalization" in ops and "Identity" not in ops
    manifest = json.loads((sample_onnx / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["model"] == "DeiT_digits_patch8_32"
    assert manifest["source"]["files"]["inference.pdiparams"] == sha256(sample_export / "inference.pdiparams")
    assert {"paddle2onnx", "onnx", "onnxruntime", "openvino"} <= manifest["versions"].keys()
    for rel, digest in manifest["files"].items():
        assert sha256(sample_onnx / rel) == digest
    assert read_artifact_info(sample_onnx).preprocess == read_artifact_info(sample_export).preprocess


def test_openvino_artifact(sample_openvino):
    names = sorted(p.name for p in sample_openvino.iterdir())
    assert names == ["inference.yml", "labels.txt", "manifest.json", "model.bin", "model.xml"]


def test_openvino_fp16_weights_are_compressed(sample_export, sample_openvino, tmp_path):
    out = tmp_path / "ov16"
    assert run_cli("convert", sample_export, "--to", "openvino", "--precision", "fp16",
                   "--out", out).code == 0
    assert (out / "model.bin").stat().st_size < 0.6 * (sample_openvino / "model.bin").stat().st_size
    r = run_cli("parity", sample_export, out, "--json")
    assert r.code == 0, r.stdout  # computed in f32 from fp16 weights: within the fp32 preset here


def test_conversion_is_deterministic(sample_export, sample_onnx, tmp_path):
    assert run_cli("convert", sample_export, "--to", "onnx", "--out", tmp_path / "again").code == 0
    assert sha256(tmp_path / "again" / "model.onnx") == sha256(sample_onnx / "model.onnx")


@pytest.mark.parametrize("name", ["DeiT_tiny_patch16_224", "DeiT_tiny_distilled_patch16_224",
                                  "ViT_small_patch16_224", "LeViT_128S"])
def test_seed_architectures_convert_with_parity(name, tmp_path):
    variant = {"distillation": True} if name.startswith("LeViT") else {}
    ckpt = save_random_checkpoint(name, tmp_path / "w.pdparams", seed=3, **variant)
    assert run_cli("export", name, "--weights", ckpt, "--out", tmp_path / "pd").code == 0
    for target in ("onnx", "openvino"):
        r = run_cli("convert", tmp_path / "pd", "--to", target, "--out", tmp_path / target)
        assert r.code == 0, r.stderr
    r = run_cli("parity", tmp_path / "pd", tmp_path / "onnx", tmp_path / "openvino",
                "--batch-sizes", "1,4", "--num-random", "4", "--json")
    report = json.loads(r.stdout)
    assert r.code == 0 and report["passed"], report
    assert [x["runtime"] for x in report["results"]] == ["onnxruntime", "openvino"]
    for row in report["results"]:
        assert row["precision"] == "fp32"
        assert row["cosine_min"] >= 0.99999 and row["top1_agreement"] == 1.0
        assert row["max_abs"] < 1e-3


def test_paddleclas_dir_without_yml_needs_model(sample_export, tmp_path):
    bare = tmp_path / "paddleclas_export"
    bare.mkdir()
    for f in ("inference.json", "inference.pdiparams"):
        shutil.copy(sample_export / f, bare / f)
    r = run_cli("convert", bare, "--to", "onnx", "--out", tmp_path / "o")
    assert_one_line_error(r, "no inference.yml", "--model")
    assert not (tmp_path / "o").exists()
    r = run_cli("convert", bare, "--to", "onnx", "--out", tmp_path / "o",
                "--model", "DeiT_digits_patch8_32")
    assert r.code == 0, r.stderr
    info = read_artifact_info(tmp_path / "o")
    assert info.preprocess.crop_size == 32 and len(info.labels) == 10


@pytest.mark.parametrize("args,needles", [
    (("--to", "tflite"), ("unknown target 'tflite'", "onnx, openvino")),
    (("--to", "onnx", "--opset", "5"), ("opset 5",)),
    (("--to", "openvino", "--precision", "int4"), ("precision 'int4'",)),
])
def test_bad_options(sample_export, tmp_path, args, needles):
    r = run_cli("convert", sample_export, *args, "--out", tmp_path / "o")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o").exists()


def test_missing_and_corrupt_sources(sample_export, tmp_path):
    assert_one_line_error(run_cli("convert", tmp_path / "nope", "--to", "onnx", "--out",
                                  tmp_path / "o"), "not found")
    bad = tmp_path / "bad"
    shutil.copytree(sample_export, bad)
    (bad / "inference.json").write_text("{not json")
    r = run_cli("convert", bad, "--to", "onnx", "--out", tmp_path / "o")
    assert_one_line_error(r, "inference.json does not match its sha256")
    r = run_cli("convert", bad, "--to", "onnx", "--out", tmp_path / "o", "--no-verify")
    assert_one_line_error(r, "paddle2onnx failed")
    assert not (tmp_path / "o").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("convert", empty, "--to", "onnx", "--out", tmp_path / "o"),
                          "no paddle inference model")


def test_refuses_to_overwrite(sample_export, sample_onnx):
    before = sha256(sample_onnx / "model.onnx")
    r = run_cli("convert", sample_export, "--to", "onnx", "--out", sample_onnx)
    assert_one_line_error(r, "not empty", "--force")
    assert sha256(sample_onnx / "model.onnx") == before


def test_onnx_runs_on_openvino_too(sample_export, sample_onnx):
    r = run_cli("parity", sample_export, sample_onnx, "-r", "onnxruntime", "-r", "openvino", "--json")
    rows = json.loads(r.stdout)["results"]
    assert r.code == 0 and [x["runtime"] for x in rows] == ["onnxruntime", "openvino"]
    assert np.isfinite([x["max_abs"] for x in rows]).all()


def test_onnx_fp16_is_a_real_fp16_model(sample_export, tmp_path, sample):
    """fp16 weights and compute, float32 input and output; judged with the fp16 preset."""
    from conftest import ROOT

    from vitdeploy.precision import PRESETS

    out = tmp_path / "o16"
    r = run_cli("convert", sample_export, "--to", "onnx", "--precision", "fp16", "--out", out, "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "fp16"
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert model.graph.input[0].type.tensor_type.elem_type == f32
    assert model.graph.output[0].type.tensor_type.elem_type == f32
    biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    assert biggest.data_type == f16
    assert (out / "model.onnx").stat().st_size < 0.6 * (sample_export / "inference.pdiparams").stat().st_size
    r = run_cli("parity", sample_export, out, "--images", ROOT / sample["test_dir"], "--json")
    row = json.loads(r.stdout)["results"][0]
    assert r.code == 0, row
    assert row["artifact_precision"] == "fp16" and row["precision"] == "fp16"
    assert row["tolerance"]["min_cosine"] == PRESETS["fp16"].min_cosine
    assert row["max_abs"] > 1e-5 and row["cosine_min"] >= 0.999 and row["top1_agreement"] >= 0.98
