"""Every seed architecture against PaddleClas's own implementation (the wheel's model zoo).

A checkpoint saved from PaddleClas's class (seeded random weights) goes through
``vitdeploy export``; the exported program on Paddle Inference must match PaddleClas's eager
output to 1e-4.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from conftest import randomize_state, run_cli
from oracle import oracle_factory

from vitdeploy.models import get_config, list_models
from vitdeploy.runtimes.paddle import PaddleRuntime

pytestmark = pytest.mark.slow  # real conversions: make test, not make check


LARGE = {"ViT_large_patch16_224", "ViT_large_patch16_384", "ViT_large_patch32_384"}
SEED_MODELS = [c.name for c in list_models()]


def _oracle_case(name: str, tmp_path, distillation: bool | None = None):
    paddle.seed(0)
    kwargs = {} if distillation is None else {"distillation": distillation}
    ref = oracle_factory(name)(**kwargs)
    ref.eval()
    randomize_state(ref, seed=len(name))
    ckpt = tmp_path / f"{name}.pdparams"
    paddle.save(ref.state_dict(), str(ckpt))
    size = get_config(name).input_size
    batch = 1 if name in LARGE else 2
    x = np.random.default_rng(1).standard_normal((batch, 3, size, size)).astype("float32")
    with paddle.no_grad():
        expected = ref(paddle.to_tensor(x)).numpy()
    del ref
    return ckpt, x, expected


def _export_and_run(name: str, ckpt, x, tmp_path) -> np.ndarray:
    out = tmp_path / "export"
    r = run_cli("export", name, "--weights", ckpt, "--out", out)
    assert r.code == 0, r.stderr
    with PaddleRuntime(out / "inference.json", threads=2) as rt:
        return rt.predict(x)


@pytest.mark.parametrize("name", SEED_MODELS)
def test_export_matches_paddleclas(name, tmp_path):
    assert len(SEED_MODELS) == 20
    distill = True if name.startswith("LeViT") else None  # released LeViT weights carry head_dist
    ckpt, x, expected = _oracle_case(name, tmp_path, distill)
    assert np.abs(expected).max() > 1e-2  # the oracle computes something non-trivial
    got = _export_and_run(name, ckpt, x, tmp_path)
    assert got.shape == expected.shape == (x.shape[0], 1000)
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_levit_without_distillation_head(tmp_path):
    """PaddleClas's factory default (no head_dist) loads too, with the plain head only."""
    ckpt, x, expected = _oracle_case("LeViT_128S", tmp_path, distillation=False)
    got = _export_and_run("LeViT_128S", ckpt, x, tmp_path)
    assert np.abs(got - expected).max() <= 1e-4


def test_levit_export_has_no_gathers(tmp_path):
    ckpt, x, _ = _oracle_case("LeViT_128S", tmp_path, distillation=True)
    _export_and_run("LeViT_128S", ckpt, x, tmp_path)
    program = (tmp_path / "export" / "inference.json").read_text()
    assert '"1.gather"' not in program and '"1.slice"' not in program
    assert '"1.batch_norm' not in program  # folded into the matmuls
    assert program.count('"1.matmul"') > 0


@pytest.mark.parametrize("name", ["DeiT_tiny_patch16_224", "DeiT_tiny_distilled_patch16_224"])
def test_no_training_ops_in_export(name, tmp_path):
    ckpt, x, _ = _oracle_case(name, tmp_path)
    _export_and_run(name, ckpt, x, tmp_path)
    program = (tmp_path / "export" / "inference.json").read_text()
    for op in ("dropout", "batch_norm", "uniform_random", "bernoulli"):
        assert f'"1.{op}' not in program
