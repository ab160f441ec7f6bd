"""Session settings: the measured defaults each runtime ships, and overrides that really apply."""

from __future__ import annotations

import numpy as np
import pytest

from vitdeploy import Predictor
from vitdeploy.errors import SettingError
from vitdeploy.runtimes import RUNTIMES


def test_defaults_are_valid_choices():
    for cls in RUNTIMES.values():
        assert set(cls.default_settings) == set(cls.setting_choices), cls.name
        for key, value in cls.default_settings.items():
            assert value in cls.setting_choices[key], (cls.name, key)
        assert cls.check_settings({}) == cls.default_settings


@pytest.mark.parametrize("runtime, overrides, needles", [
    ("onnxruntime", {"threads": 4}, ["no setting 'threads'", "graph_optimization"]),
    ("onnxruntime", {"graph_optimization": "max"}, ["graph_optimization='max'", "basic"]),
    ("onnxruntime", {"mem_arena": 1}, ["mem_arena=1", "True, False"]),  # 1 is not a bool
    ("openvino", {"streams": 3}, ["streams=3", "auto, 1, 2, 4"]),
    ("paddle", {"memory_optim": True}, ["no setting 'memory_optim'", "onednn, ir_optim"]),
    ("lite", {"power_mode": "high"}, ["no setting 'power_mode'", "none"]),
])
def test_bad_settings_are_refused(runtime, overrides, needles):
    with pytest.raises(SettingError) as e:
        RUNTIMES[runtime].check_settings(overrides)
    for needle in needles:
        assert needle in str(e.value)


def _outputs(artifact, runtime, settings, x):
    with Predictor(artifact, runtime=runtime, settings=settings) as p:
        return p.predict_batch(x), p.runtime


def test_overrides_apply_and_keep_results(sample_export, sample_onnx, sample_openvino):
    with Predictor(sample_export) as p:
        size = p.input_size
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    for artifact, runtime, settings in [
        (sample_export, "paddle", {"onednn": False, "ir_optim": False}),
        (sample_onnx, "onnxruntime", {"library": True}),
        (sample_onnx, "onnxruntime", {"graph_optimization": "basic", "mem_arena": False,
                                      "spinning": False}),
        (sample_openvino, "openvino", {"hint": "THROUGHPUT", "streams": 2}),
    ]:
        ref, _ = _outputs(artifact, runtime, {}, x)
        got, rt = _outputs(artifact, runtime, settings, x)
        assert rt.settings == {**rt.default_settings, **settings}
        np.testing.assert_allclose(got, ref, atol=1e-4, err_msg=f"{runtime} {settings}")


def test_openvino_hint_reaches_the_compiled_model(sample_openvino):
    for hint, streams in (("LATENCY", "auto"), ("THROUGHPUT", 2)):
        with Predictor(sample_openvino, settings={"hint": hint, "streams": streams}) as p:
            compiled = p.runtime._compiled
            assert str(compiled.get_property("PERFORMANCE_HINT")) == hint
            if streams != "auto":
                assert int(compiled.get_property("NUM_STREAMS")) == streams
