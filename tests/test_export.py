"""`vitdeploy export`: the artifact it writes, and how it refuses bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import paddle
import pytest
import yaml
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.artifact import read_artifact_info, sha256
from vitdeploy.models import get_config
from vitdeploy.runtimes.paddle import PaddleRuntime


def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_artifact_contents(sample_export, sample):
    assert _listing(sample_export) == ["inference.json", "inference.pdiparams", "inference.yml",
                                       "labels.txt", "manifest.json"]
    manifest = json.loads((sample_export / "manifest.json").read_text())
    assert manifest["model"] == sample["model"] and manifest["num_classes"] == 10
    assert manifest["input"]["shape"] == [None, 3, 32, 32]
    assert manifest["verify"]["max_abs_diff"] <= 1e-4
    assert {"paddlepaddle", "numpy", "python", "vitdeploy"} <= manifest["versions"].keys()
    for rel, digest in manifest["files"].items():
        assert sha256(sample_export / rel) == digest
    assert set(manifest["files"]) == set(_listing(sample_export)) - {"manifest.json"}
    info = read_artifact_info(sample_export)
    assert info.preprocess == get_config(sample["model"]).preprocess
    assert info.labels == [str(i) for i in range(10)]


def test_inference_yml_is_paddleclas_layout(sample_export):
    cfg = yaml.safe_load((sample_export / "inference.yml").read_text())
    ops = [next(iter(op)) for op in cfg["PreProcess"]["transform_ops"]]
    assert ops == ["ResizeImage", "CropImage", "NormalizeImage", "ToCHWImage"]
    assert cfg["PostProcess"]["class_id_map_file"] == "labels.txt"


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_dynamic_batch(sample_export, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype("float32")
    with PaddleRuntime(sample_export / "inference.json") as rt:
        y = rt.predict(x)
        y1 = np.concatenate([rt.predict(x[i:i + 1]) for i in range(batch)])
    assert y.shape == (batch, 10)
    np.testing.assert_allclose(y, y1, atol=1e-5)


def test_export_is_deterministic(tmp_path, sample):
    digests = []
    for i in range(2):
        out = tmp_path / f"e{i}"
        assert run_cli("export", sample["model"], "--weights", ROOT / sample["weights"],
                       "--out", out).code == 0
        digests.append(json.loads((out / "manifest.json").read_text())["files"])
    assert digests[0] == digests[1]


def test_softmax_flag(tmp_path, sample):
    out = tmp_path / "sm"
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"], "--out", out,
                "--softmax", "--json")
    assert r.code == 0 and json.loads(r.stdout)["softmax"] is True
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype("float32")
    with PaddleRuntime(out / "inference.json") as rt:
        y = rt.predict(x)
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    assert '"1.softmax"' in (out / "inference.json").read_text()


def test_force_replaces_and_refuses_without(tmp_path, sample):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    args = ("export", sample["model"], "--weights", ROOT / sample["weights"], "--out", out)
    assert_one_line_error(run_cli(*args), "not empty", "--force")
    assert (out / "mine.txt").read_text() == "user data"
    assert run_cli(*args, "--force").code == 0
    assert not (out / "mine.txt").exists() and (out / "inference.json").exists()
    assert _listing(tmp_path) == ["o"]  # no temp or backup directories left behind


def test_empty_existing_dir_is_fine(tmp_path, sample):
    out = tmp_path / "empty"
    out.mkdir()
    assert run_cli("export", sample["model"], "--weights", ROOT / sample["weights"],
                   "--out", out).code == 0


def _bad(tmp_path, *args, needles=()):
    out = tmp_path / "out"
    r = run_cli("export", *args, "--out", out)
    assert_one_line_error(r, *needles)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_checkpoint(tmp_path):
    _bad(tmp_path, "DeiT_tiny_patch16_224", "--weights", tmp_path / "nope.pdparams",
         needles=("not found",))


def test_truncated_checkpoint(tmp_path, sample):
    p = tmp_path / "t.pdparams"
    p.write_bytes((ROOT / sample["weights"]).read_bytes()[:5000])
    _bad(tmp_path, sample["model"], "--weights", p, needles=("truncated",))


def test_wrong_architecture(tmp_path, sample):
    _bad(tmp_path, "DeiT_tiny_patch16_224", "--weights", ROOT / sample["weights"],
         needles=("does not fit DeiT_tiny_patch16_224", "missing", "mis-shaped"))


def test_unknown_model(tmp_path, sample):
    _bad(tmp_path, "DeiT_giant", "--weights", ROOT / sample["weights"],
         needles=("unknown model 'DeiT_giant'", "vitdeploy models"))


def test_labels_count_mismatch(tmp_path, sample):
    labels = tmp_path / "l.txt"
    labels.write_text("a\nb\n")
    _bad(tmp_path, sample["model"], "--weights", ROOT / sample["weights"], "--labels", labels,
         needles=("2 labels", "10 classes"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_parent_non_root(tmp_path, sample):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"],
                "--out", ro / "out")
    assert_one_line_error(r, "cannot write")


def test_out_is_a_file_or_unwritable(tmp_path, sample):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"], "--out", f)
    assert_one_line_error(r, "is a file")
    assert f.read_text() == "x"
    # a parent that is a file cannot be created, even by root
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"],
                "--out", f / "sub")
    assert_one_line_error(r, "cannot write")


def test_failed_export_leaves_nothing(tmp_path, sample, monkeypatch):
    """A failure after the temp dir exists (here: in jit.save) removes it; the target is untouched."""
    from vitdeploy import export as export_mod
    from vitdeploy.errors import ExportError

    def boom(*a, **k):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(export_mod, "save_inference_model", boom)
    with pytest.raises(ExportError, match="simulated failure"):
        export_mod.export_model(sample["model"], ROOT / sample["weights"], tmp_path / "out")
    assert _listing(tmp_path) == []


def test_export_library_roundtrip_fine_tuned(tmp_path):
    """A fine-tuned 10-class DeiT-tiny exports with its classes read from the head."""
    from conftest import randomize_state

    from vitdeploy.export import export_model
    from vitdeploy.models.loader import build_model

    m = build_model("DeiT_tiny_patch16_224", num_classes=10).model
    randomize_state(m)
    paddle.save(m.state_dict(), str(tmp_path / "ft.pdparams"))
    res = export_model("DeiT_tiny_patch16_224", tmp_path / "ft.pdparams", tmp_path / "e")
    assert res.num_classes == 10 and res.verify_max_abs_diff <= 1e-4
    shutil.rmtree(tmp_path / "e")
