"""OpenVINO's compute precision is reported as compiled, and a fallback is said, never silent."""

from __future__ import annotations

from vitdeploy.runtimes.openvino import fallback_note


def test_fallback_note():
    assert fallback_note("fp32", "fp32", ["FP32"]) is None
    assert fallback_note("bf16", "bf16", ["BF16", "FP32"]) is None
    assert fallback_note("bf16", "fp32", ["FP32", "INT8"]) == "this CPU has no bf16; computed in fp32"
    assert fallback_note("fp16", "fp32", ["BF16"]) == "this CPU has no fp16; computed in fp32"
    assert fallback_note("bf16", "fp32", ["BF16"]) == "asked for bf16; OpenVINO computed in fp32"
