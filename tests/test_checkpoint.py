"""The restricted unpickler: real paddle.save files load, anything executable is refused."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import numpy as np
import paddle
import pytest

from vitdeploy.checkpoint import safe_load, to_dtype
from vitdeploy.errors import CheckpointError, UnsafeCheckpointError


class _Touch:
    """Unpickling this would create a file: the canary for code execution."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Open:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("payload", [_Touch, _Open])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, payload):
    canary = tmp_path / "pwned"
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"head.weight": np.zeros((2, 2), "float32"),
                                   "x": payload(str(canary))}))
    with pytest.raises(UnsafeCheckpointError, match="refusing checkpoint"):
        safe_load(evil)
    assert not canary.exists()


def test_malicious_pickle_via_cli_exit_1(tmp_path):
    from conftest import assert_one_line_error, run_cli

    canary = tmp_path / "pwned"
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps(_Touch(str(canary))))
    r = run_cli("export", "DeiT_tiny_patch16_224", "--weights", evil, "--out", tmp_path / "o")
    assert_one_line_error(r, "refusing", "posix.system")
    assert not canary.exists() and not (tmp_path / "o").exists()


def test_paddle_save_roundtrip_with_wrappers_and_prefixes(tmp_path):
    sd = {"a.weight": paddle.rand([3, 4]), "idx": paddle.to_tensor(np.arange(5, dtype="int64"))}
    for i, wrap in enumerate([lambda d: d, lambda d: {"state_dict": d}, lambda d: {"model": d},
                              lambda d: {"state_dict": {f"backbone.{k}": v for k, v in d.items()}}]):
        p = tmp_path / f"c{i}.pdparams"
        paddle.save(wrap(sd), str(p))
        got = safe_load(p)
        assert sorted(got) == ["a.weight", "idx"]
        np.testing.assert_array_equal(got["a.weight"], sd["a.weight"].numpy())
        assert got["idx"].dtype == np.int64


def test_ordered_dict_and_protocol_2(tmp_path):
    p = tmp_path / "old.pdparams"
    p.write_bytes(pickle.dumps(OrderedDict(w=np.ones((2,), "float32")), protocol=2))
    assert safe_load(p)["w"].tolist() == [1.0, 1.0]


def test_path_without_suffix_is_found(tmp_path):
    paddle.save({"w": paddle.ones([1])}, str(tmp_path / "ckpt.pdparams"))
    assert "w" in safe_load(tmp_path / "ckpt")


@pytest.mark.parametrize("content,match", [
    (b"", "truncated"),
    (b"not a pickle at all", "truncated"),
    (pickle.dumps([1, 2, 3]), "not a state dict"),
    (pickle.dumps({"w": 3}), "not an array"),
    (pickle.dumps({}), "no parameters"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.pdparams"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        safe_load(p)


def test_truncated_real_checkpoint(tmp_path):
    p = tmp_path / "t.pdparams"
    paddle.save({"w": paddle.rand([64, 64])}, str(p))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        safe_load(p)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        safe_load(tmp_path / "nope.pdparams")


def test_fp16_and_bf16_cast_to_float32():
    x = np.array([1.5, -2.25], dtype=np.float32)
    assert to_dtype(x.astype(np.float16), np.dtype("float32")).tolist() == [1.5, -2.25]
    bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # how paddle stores bfloat16
    assert to_dtype(bf16, np.dtype("float32")).tolist() == [1.5, -2.25]
