"""ONNX Runtime int8 recipes on the sample (a small DeiT trained on sklearn digits): real
calibration, accuracy against the measured fp32, the graph's QDQ placement, determinism, and the
accuracy budget's fall-back to float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from quantize_helpers import assert_keeps_top1, boundary_set, digest, sample_data

from vitdeploy.errors import CheckNotMet, OptionError, QuantizeError
from vitdeploy.quantize.calib import Calibration, EvalSet
from vitdeploy.quantize.onnxruntime import ORT_MODES, quantize_onnx

pytestmark = pytest.mark.slow  # real calibration and quantization of the sample



def predict(model: Path, x: np.ndarray) -> np.ndarray:
    """Through vitdeploy's runtime: a QDQ graph's exact int8 arithmetic on every CPU (int8
    kernels without VNNI saturate: docs/quantization.md)."""
    from vitdeploy.runtimes.onnxruntime import OnnxRuntime

    rt = OnnxRuntime(model)
    rt.load()
    return rt.predict(x)


def producers(model: onnx.ModelProto) -> dict[str, str]:
    return {o: n.op_type for n in model.graph.node for o in n.output}


@pytest.fixture(scope="module")
def data(sample, sample_onnx) -> tuple[Calibration, EvalSet]:
    return sample_data(sample, sample_onnx)


@pytest.fixture(scope="module")
def static(sample_onnx, data, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    calib, eval_set = data
    lines: list[str] = []
    dest = tmp_path_factory.mktemp("ort-int8") / "model.onnx"
    record = quantize_onnx(sample_onnx / "model.onnx", dest, "int8", calib, eval_set=eval_set,
                           max_drop=0.5, progress=lines.append)
    return dest, record, lines


def test_static_int8_keeps_top1_and_quantizes_only_weight_layers(static, sample_onnx, data, sample):
    dest, record, lines = static
    calib, _ = data
    assert_keeps_top1(predict, sample_onnx / "model.onnx", dest, record, data, sample)
    recipe = record["recipe"]
    assert recipe["format"] == "QDQ" and recipe["per_channel"] and recipe["weight_type"] == "int8"
    assert recipe["calibration"]["method"] == "Percentile" and "sensitivity" not in recipe
    assert any("calibrating" in ln for ln in lines)

    model = onnx.load(str(dest))
    made_by = producers(model)
    consts = {i.name for i in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    quantized = [n for n in matmuls if all(made_by.get(i) == "DequantizeLinear" for i in n.input[:2])]
    attention = [n for n in matmuls if made_by.get(n.input[1]) not in ("DequantizeLinear", None)
                 and n.input[1] not in consts]
    assert len(quantized) == recipe["layers_quantized"] == 17  # 16 weight MatMuls + the head Gemm
    assert len(attention) == 8 and not any(made_by.get(i) == "DequantizeLinear"
                                           for n in attention for i in n.input)
    for n in model.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax", "Add", "Erf"):
            assert not any(made_by.get(i) == "DequantizeLinear" for i in n.input), n.name
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 0


def test_dynamic_int8_keeps_top1(sample_onnx, data, tmp_path):
    calib, eval_set = data
    dest = tmp_path / "dyn.onnx"
    record = quantize_onnx(sample_onnx / "model.onnx", dest, "dynamic-int8", eval_set=eval_set,
                           max_drop=0.5)
    assert record["mode"] == "dynamic-int8" and record["calibration"] is None
    assert record["accuracy"]["drop_points"] <= 0.5 and record["kept_float"] == []
    ref = predict(sample_onnx / "model.onnx", eval_set.x)
    assert (predict(dest, eval_set.x).argmax(1) == ref.argmax(1)).mean() >= 0.99
    ops = [n.op_type for n in onnx.load(str(dest)).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops and "QuantizeLinear" not in ops
    again = tmp_path / "dyn2.onnx"
    quantize_onnx(sample_onnx / "model.onnx", again, "dynamic-int8")
    assert digest(again) == digest(dest)


def test_static_int8_is_byte_identical(static, sample_onnx, data, tmp_path):
    again = tmp_path / "again.onnx"
    record = quantize_onnx(sample_onnx / "model.onnx", again, "int8", data[0])
    assert digest(again) == digest(static[0])
    assert record["accuracy"] is None and record["kept_float"] == []


def test_budget_puts_the_most_sensitive_layers_back_in_float(sample_onnx, data, tmp_path):
    calib, eval_set = data
    hard = boundary_set(predict, sample_onnx / "model.onnx", eval_set, steps=4)
    lines: list[str] = []
    dest = tmp_path / "budget.onnx"
    record = quantize_onnx(sample_onnx / "model.onnx", dest, "int8", calib, eval_set=hard,
                           max_drop=0.0, progress=lines.append)
    acc, kept, recipe = record["accuracy"], record["kept_float"], record["recipe"]
    assert acc["fp32_top1"] == 1.0 and acc["drop_points"] <= 0.0
    assert kept and kept[0] == recipe["sensitivity"]["top"][0][0]  # most sensitive first
    assert recipe["budget_steps"][0]["kept_float"] == 1 and recipe["budget_steps"][0]["drop_points"] > 0
    assert any(ln.startswith("accuracy budget") for ln in lines)
    model = onnx.load(str(dest))
    made_by = producers(model)
    for n in model.graph.node:
        if n.name in kept:  # back in float: fed float weights and activations
            assert not any(made_by.get(i) == "DequantizeLinear" for i in n.input[:2]), n.name
    assert (predict(dest, hard.x).argmax(1) == hard.y).all()


def test_budget_out_of_reach_raises_check_not_met(sample_onnx, data, tmp_path):
    calib, eval_set = data
    razor = boundary_set(predict, sample_onnx / "model.onnx", eval_set, steps=20)  # margins ~1e-5
    dest = tmp_path / "never.onnx"
    with pytest.raises(CheckNotMet) as err:
        quantize_onnx(sample_onnx / "model.onnx", dest, "int8", calib, eval_set=razor, max_drop=0.0)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert "best drop reached" in str(err.value) and "kept in float" in str(err.value)
    assert not dest.exists()


def test_bad_inputs_are_one_line_errors(tmp_path, data):
    calib, eval_set = data
    src = tmp_path / "model.onnx"
    with pytest.raises(OptionError, match="int4") as err:
        quantize_onnx(src, tmp_path / "q.onnx", "int4", calib)
    assert all(m in str(err.value) for m in ORT_MODES)
    with pytest.raises(OptionError, match=r"static int8 needs calibration images: pass --calib DIR"):
        quantize_onnx(src, tmp_path / "q.onnx", "int8")
    with pytest.raises(OptionError, match="--eval-data"):
        quantize_onnx(src, tmp_path / "q.onnx", "int8", calib, max_drop=0.5)
    with pytest.raises(QuantizeError, match="not found"):
        quantize_onnx(src, tmp_path / "q.onnx", "dynamic-int8")
    src.write_bytes(b"not an onnx model")
    with pytest.raises(QuantizeError) as err:
        quantize_onnx(src, tmp_path / "q.onnx", "dynamic-int8")
    assert "\n" not in str(err.value)


def _int8_run(model: Path, x: np.ndarray, mode: str) -> tuple[np.ndarray, list[str]]:
    from vitdeploy.runtimes.onnxruntime import OnnxRuntime

    rt = OnnxRuntime(model, settings={"int8": mode})
    rt.load()
    return rt.predict(x), rt.notes


def test_emulated_int8_is_the_graphs_exact_arithmetic(static, data, monkeypatch):
    """Without VNNI, int8 kernels saturate (16-bit sums); "emulated" keeps the QDQ graph's exact
    int8 arithmetic: that of ONNX Runtime with every fusion off (QuantizeLinear, DequantizeLinear
    and float MatMul, node by node). "auto" chooses by the CPU's flags, and says so."""
    dest, _, _ = static
    x = data[1].x[:64]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    unfused = ort.InferenceSession(str(dest), opts, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    emulated, notes = _int8_run(dest, x, "emulated")
    from vitdeploy.check.parity import compare

    # equal up to a rounding flip in a QuantizeLinear where other float fusions moved a value
    # across a half step (native kernels without VNNI: cosine 0.96, mean abs 0.057 here)
    m = compare(unfused, emulated)
    assert m["cosine_min"] >= 0.9999 and m["mean_abs"] <= 1e-3 and m["top1_agreement"] == 1.0, m
    assert len(notes) == 1 and "int8 emulated in fp32" in notes[0]
    monkeypatch.setenv("VITDEPLOY_CPU_FLAGS", "sse4_2 avx2 fma")  # a CPU without VNNI
    auto, notes = _int8_run(dest, x, "auto")
    np.testing.assert_array_equal(auto, emulated)
    assert "this CPU has no VNNI" in notes[0]
    monkeypatch.setenv("VITDEPLOY_CPU_FLAGS", "avx2 avx512f avx512_vnni")
    _, notes = _int8_run(dest, x, "auto")  # native kernels, exact on VNNI: nothing to say
    assert notes == []
