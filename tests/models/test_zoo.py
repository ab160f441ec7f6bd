"""`vitdeploy models`: names, params and FLOPs against the seed tables."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest
from conftest import run_cli
from seed_tables import SEED

from vitdeploy.errors import UnknownModelError
from vitdeploy.models import get_config
from vitdeploy.models.loader import build_model
from vitdeploy.zoo import count_flops


@pytest.fixture(scope="module")
def listing() -> list[dict]:
    r = run_cli("models", "--json")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def test_lists_exactly_the_seed_models(listing):
    assert sorted(m["name"] for m in listing) == sorted(SEED)
    for m in listing:
        assert {"name", "params_m", "flops_g", "input_size"} <= m.keys()
        assert m["input_size"] == (384 if m["name"].endswith("384") and "LeViT" not in m["name"] else 224)


@pytest.mark.parametrize("name", sorted(SEED))
def test_params_and_flops_match_seed(listing, name):
    row = next(m for m in listing if m["name"] == name)
    params, flops = SEED[name]
    if name.startswith("LeViT"):  # the seed rounds LeViT params to 2 significant digits
        digits = 0 if params >= 10 else 1
        assert round(row["params_m"], digits) == params
    else:
        assert abs(row["params_m"] - params) / params <= 0.01
    assert abs(row["flops_g"] - flops) / flops <= 0.05


def test_names_are_case_insensitive():
    assert get_config("deit_TINY_patch16_224").name == "DeiT_tiny_patch16_224"
    with pytest.raises(UnknownModelError, match="vitdeploy models"):
        get_config("DeiT_huge")


@pytest.mark.parametrize("name", ["DeiT_tiny_patch16_224", "LeViT_128S"])
def test_analytic_flops_equal_measured_macs(name):
    """The analytic count against MACs hooked from a real forward pass of the built model."""
    model = build_model(name).model
    total = [0.0]

    def hook(layer, inputs, output):
        if isinstance(layer, paddle.nn.Linear):
            total[0] += np.prod(output.shape[:-1]) * layer.weight.shape[0] * layer.weight.shape[1]
        else:  # Conv2D
            w = layer.weight.shape
            total[0] += np.prod(output.shape) * w[1] * w[2] * w[3]

    handles = [m.register_forward_post_hook(hook) for m in model.sublayers()
               if isinstance(m, (paddle.nn.Linear, paddle.nn.Conv2D))]
    with paddle.no_grad():
        model(paddle.zeros([1, 3, 224, 224]))
    for h in handles:
        h.remove()
    analytic = count_flops(name)
    if name.startswith("LeViT"):  # analytic also counts the attention products and head_dist
        assert total[0] < analytic < total[0] * 1.2
    else:
        assert abs(analytic - total[0]) / total[0] < 1e-6
