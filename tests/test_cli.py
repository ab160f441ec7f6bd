"""Option wiring, in-process (typer's CliRunner): every flag reaches the typed options or is refused
with one line and exit 1 before any work starts."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from conftest import assert_one_line_error, invoke
from typer.main import get_command

from vitdeploy.cli import app
from vitdeploy.convert import TARGETS, convert, make_options
from vitdeploy.errors import OptionError


@pytest.mark.parametrize("args,needles", [
    (("--to", "onnx", "--arch", "arm8"), ("--arch does not apply to --to onnx", "--opset, --precision")),
    (("--to", "onnx", "--weights", "w.pdparams"), ("--weights does not apply to --to onnx",)),
    (("--to", "onnx", "--quantize", "int8"), ("--quantize int8 calibrates", "--calib DIR")),
    (("--to", "onnx", "--quantize", "int16"), ("--quantize 'int16'", "int8, dynamic-int8")),
    (("--to", "openvino", "--quantize", "dynamic-int8"), ("--quantize 'dynamic-int8'", "choose int8")),
    (("--to", "onnx", "--quantize", "dynamic-int8", "--calib", "c"), ("needs no calibration",)),
    (("--to", "onnx", "--calib", "c"), ("--calib goes with --quantize",)),
    (("--to", "onnx", "--quantize", "int8", "--calib", "c", "--max-drop", "0.5"),
     ("--max-drop is measured on labelled images", "--eval-data")),
    (("--to", "onnx", "--quantize", "int8", "--calib", "c", "--max-drop", "nan", "--eval-data", "e"),
     ("--max-drop nan is out of range",)),
    (("--to", "openvino", "--quantize", "int8", "--calib", "c", "--precision", "fp16"),
     ("exclude each other",)),
    (("--to", "lite", "--calib", "c"), ("--calib does not apply to --to lite",)),
    (("--to", "openvino", "--fp16"), ("--fp16 does not apply to --to openvino",)),
    (("--to", "lite", "--precision", "fp16"), ("--precision does not apply to --to lite",
                                               "--arch, --quantize, --fp16, --weights")),
    (("--to", "lite", "--opset", "13"), ("--opset does not apply to --to lite",)),
    (("--to", "onnx", "--precision", "int4"), ("--precision 'int4'", "fp32, fp16")),
    (("--to", "onnx", "--opset", "99"), ("--opset 99 is out of range",)),
    (("--to", "lite", "--arch", "mips"), ("--arch 'mips'", "arm8")),
    (("--to", "lite", "--arch", "x86", "--quantize", "int8"), ("NaN",)),
    (("--to", "lite", "--arch", "armv7", "--fp16"), ("--fp16", "arm8")),
    (("--to", "tflite",), ("unknown target 'tflite'", "onnx, openvino, lite")),
])
def test_convert_refuses_options_a_target_lacks(tmp_path, args, needles):
    # the source does not even exist: options are checked first, before any work
    r = invoke("convert", tmp_path / "no-src", *args, "--out", tmp_path / "o")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o").exists()


def test_library_refuses_the_same(tmp_path):
    with pytest.raises(OptionError, match="--arch, --fp16 does not apply to --to onnx"):
        convert(tmp_path / "no-src", "onnx", tmp_path / "o", arch="arm8", fp16=True)
    with pytest.raises(OptionError, match="not the options type"):
        convert(tmp_path / "no-src", "onnx", tmp_path / "o", make_options("lite", {}))
    assert make_options("onnx", {"precision": "fp16"}).precision == "fp16"
    assert make_options("lite", {"weights": "w.pdparams"}).weights.name == "w.pdparams"


def test_every_target_option_has_a_cli_flag():
    """The CLI's flags and the targets' typed options cannot drift apart."""
    params = {p.name for p in get_command(app).commands["convert"].params}
    for name, target in TARGETS.items():
        missing = {f.name for f in fields(target.options)} - params
        assert not missing, (name, missing)


@pytest.mark.parametrize("args,needles", [
    (("predict",), ("missing argument", "predict --help")),
    (("predict", "d", "x.png", "--topk", "0"), ("--topk",)),
    (("export", "DeiT_tiny_patch16_224"), ("missing option", "--weights")),
    (("nosuchcommand",), ("no such command",)),
    (("parity", "a", "b", "--batch-sizes", "1,x"), ("--batch-sizes '1,x'",)),
    (("parity", "a", "b", "--batch-sizes", "0"), ("--batch-sizes '0'",)),
    (("parity", "a", "b", "--batch-sizes", ""), ("--batch-sizes",)),
    (("parity", "a", "b", "--min-cosine", "nan"), ("--min-cosine nan is out of range",)),
    (("parity", "a", "b", "--min-cosine", "inf"), ("--min-cosine inf",)),
    (("parity", "a", "b", "--min-top1-agreement", "1.5"), ("--min-top1-agreement 1.5",)),
    (("parity", "a", "b", "--max-abs", "-1"), ("--max-abs -1",)),
    (("inspect", "x.nb", "--arch", "mips"), ("unknown --arch 'mips'",)),
])
def test_bad_input_is_one_line_exit_1(args, needles):
    assert_one_line_error(invoke(*args), *needles)


def test_help_and_version_exit_0():
    assert invoke("--version").code == 0
    r = invoke("convert", "--help")
    assert r.code == 0 and "--precision" in r.stdout and "--no-verify" in r.stdout
    assert invoke().code == 0  # no arguments: the help


def test_models_json_in_process():
    r = invoke("models", "--json")
    assert r.code == 0
    assert len(json.loads(r.stdout)) == 20


def test_parity_input_memory_is_bounded(sample_export):
    r = invoke("parity", sample_export, sample_export, "--num-random", "100000000")
    assert_one_line_error(r, "parity holds its inputs in memory", "smaller --num-random")


def test_json_output_is_strict():
    """NaN / inf (e.g. a model giving non-finite outputs) become null, never invalid JSON."""
    from vitdeploy.cli.base import _finite

    data = _finite({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2})
    assert data == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2}
    json.dumps(data, allow_nan=False)


@pytest.mark.parametrize("command", [
    ("parity", "no-ref", "no-art"),
    ("eval", "no-art", "--data", "no-data"),
    ("bench", "no-art"),
])
def test_save_refuses_a_file_it_did_not_write_before_any_work(tmp_path, command):
    """Checked first: the artifacts do not even exist, and the user's file is untouched."""
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}\n')
    r = invoke(*command, "--save", mine)
    assert_one_line_error(r, f"{mine} exists and is not a vitdeploy result",
                          "choose another --save path")
    assert mine.read_text() == '{"mine": true}\n'


def test_parity_save_writes_what_json_prints(sample_export, tmp_path):
    saved = tmp_path / "parity.json"
    r = invoke("parity", sample_export, sample_export, "--num-random", "2", "--batch-sizes", "1,2",
               "--json", "--save", saved)
    assert r.code == 0, r.stderr
    doc = json.loads(saved.read_text())
    assert doc.pop("vitdeploy_result") == "parity" and "vitdeploy_version" in doc.keys()
    doc.pop("vitdeploy_version")
    assert doc == json.loads(r.stdout)
    # the table still goes to stdout without --json, and an earlier --save is replaced
    r = invoke("parity", sample_export, sample_export, "--num-random", "2", "--batch-sizes", "1",
               "--save", saved)
    assert r.code == 0 and "agree with the reference" in r.stdout
    assert json.loads(saved.read_text())["batch_sizes"] == [1]


def test_eval_save_keeps_exit_2_and_saves(sample, sample_export, tmp_path):
    """A check not met is still a result: saved, then exit 2 (the sample's top-1 is 99.17%)."""
    from conftest import ROOT

    saved = tmp_path / "eval.json"
    r = invoke("eval", sample_export, "--data", ROOT / sample["test_dir"], "--min-top1", "1.0",
               "--json", "--save", saved)
    assert r.code == 2, r.stderr
    doc = json.loads(saved.read_text())
    assert doc["vitdeploy_result"] == "eval" and doc["data"] == str(ROOT / sample["test_dir"])
    assert doc["results"] == json.loads(r.stdout)
