"""Checkpoints of every shape users bring: PASSL head0, fp16, LeViT with/without head_dist,
fine-tuned heads; and a clear refusal for anything that does not fit."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
from conftest import randomize_state

from vitdeploy.errors import CheckpointError
from vitdeploy.models.loader import build_model, load_model

NAME = "DeiT_tiny_patch16_224"


def _save(state: dict, path) -> str:
    paddle.save({k: paddle.to_tensor(v) if isinstance(v, np.ndarray) else v
                 for k, v in state.items()}, str(path))
    return str(path)


def _forward(model, seed=0, size=224):
    x = np.random.default_rng(seed).standard_normal((2, 3, size, size)).astype("float32")
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


def test_num_classes_inferred_from_head(tmp_path):
    m = build_model(NAME, num_classes=37).model
    randomize_state(m)
    lm = load_model(NAME, _save(m.state_dict(), tmp_path / "ft.pdparams"))
    assert lm.num_classes == 37
    np.testing.assert_allclose(_forward(lm.model), _forward(m), atol=1e-5)


def test_num_classes_mismatch_is_reported(tmp_path):
    m = build_model(NAME, num_classes=37).model
    with pytest.raises(CheckpointError, match="head has 37 classes but --num-classes is 10"):
        load_model(NAME, _save(m.state_dict(), tmp_path / "ft.pdparams"), num_classes=10)


def test_wrong_architecture_lists_missing_unexpected_misshaped(tmp_path):
    m = build_model("DeiT_small_patch16_224").model
    with pytest.raises(CheckpointError) as e:
        load_model("DeiT_tiny_distilled_patch16_224", _save(m.state_dict(), tmp_path / "s.pdparams"))
    msg = str(e.value)
    assert "does not fit DeiT_tiny_distilled_patch16_224" in msg
    assert "missing (" in msg and "dist_token" in msg
    assert "mis-shaped" in msg and "\n" not in msg


def test_unexpected_keys_are_not_ignored(tmp_path):
    m = build_model(NAME).model
    state = {k: v.numpy() for k, v in m.state_dict().items()}
    state["extra.weight"] = np.zeros((3,), "float32")
    with pytest.raises(CheckpointError, match=r"1 unexpected \(extra.weight\)"):
        load_model(NAME, _save(state, tmp_path / "x.pdparams"))


def test_passl_head0_prelogits_backbone_prefix_and_fp16(tmp_path):
    """PASSL ViT: head0 + tanh pre-logits, keys under backbone. in {'state_dict'}, fp16 O2 weights."""
    ref = build_model("ViT_base_patch16_224", pre_logits=True).model
    randomize_state(ref)
    fp16 = {f"backbone.{k}": v.numpy().astype("float16") for k, v in ref.state_dict().items()}
    path = tmp_path / "passl.pdparams"
    paddle.save({"state_dict": {k: paddle.to_tensor(v) for k, v in fp16.items()}}, str(path))
    lm = load_model("ViT_base_patch16_224", path)
    assert lm.variant == {"pre_logits": True}
    # expected: the reference with its weights rounded through fp16, computed by hand at the head
    ref.set_state_dict({k[len("backbone."):]: v.astype("float32") for k, v in fp16.items()})
    got, want = _forward(lm.model), _forward(ref)
    np.testing.assert_allclose(got, want, atol=1e-5)
    no_head0 = build_model("ViT_base_patch16_224").model
    no_head0.set_state_dict({k: v for k, v in ref.state_dict().items() if "head0" not in k})
    assert np.abs(_forward(no_head0) - got).max() > 1e-3  # head0 really is applied


def test_levit_attention_index_buffer_must_agree(tmp_path):
    m = build_model("LeViT_128S").model
    state = {k: v.numpy() for k, v in m.state_dict().items()}
    key = next(k for k in state if k.endswith("attention_bias_idxs"))
    state[key] = state[key][::-1].copy()
    with pytest.raises(CheckpointError, match="attention layout"):
        load_model("LeViT_128S", _save(state, tmp_path / "l.pdparams"))
    del state[key]  # derived buffers may be absent (e.g. converted from timm)
    assert load_model("LeViT_128S", _save(state, tmp_path / "l2.pdparams")).num_classes == 1000
