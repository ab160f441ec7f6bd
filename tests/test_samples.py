"""The hard sample (samples/train_hard_digits.py, docs/samples.md): its recorded accuracy, size and
splits, and that its recorded top-1 is what the exported checkpoint gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

NAME = re.compile(r"digit_(\d{4})_v(\d+)\.png")


@pytest.fixture(scope="module")
def hard() -> dict:
    return json.loads((ROOT / "samples" / "hard_sample.json").read_text())


def source_ids(folder: Path) -> set[int]:
    """The source digit of every PNG under ``folder``, from its name ``digit_{id:04d}_v{k}.png``."""
    ids = set()
    for p in folder.rglob("*.png"):
        m = NAME.fullmatch(p.name)
        assert m, p
        ids.add(int(m.group(1)))
    return ids


def test_hard_sample_accuracy_is_in_the_band(hard):
    # Hard enough that int8 recipes differ, easy enough that the model is still useful.
    assert 0.85 <= hard["top1"] <= 0.95
    assert hard["test_images"] == len(list((ROOT / hard["test_dir"]).rglob("*.png")))
    assert hard["test_images"] >= 1000  # one image is ~0.1 top-1 point
    for key in ("weights", "labels", "test_dir", "calib_dir"):
        assert (ROOT / hard[key]).exists(), key


def test_hard_sample_size():
    folder = ROOT / "samples" / "hard_digits"
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) <= 5e6


def test_calib_and_test_disjoint_by_source(hard):
    test, calib = source_ids(ROOT / hard["test_dir"]), source_ids(ROOT / hard["calib_dir"])
    assert len(test) * hard["construction"]["test_variants_per_digit"] == hard["test_images"]
    assert len(list((ROOT / hard["calib_dir"]).rglob("*.png"))) == 200
    assert not test & calib  # no calibration image is a variant of a test digit


@pytest.mark.slow
def test_hard_sample_top1_through_export(hard, tmp_path):
    from vitdeploy.check.evaluate import evaluate
    from vitdeploy.export import export_model
    from vitdeploy.predictor import Predictor

    export_model(hard["model"], ROOT / hard["weights"], tmp_path / "export",
                 labels=ROOT / hard["labels"])
    with Predictor(tmp_path / "export") as pred:
        result = evaluate(pred, ROOT / hard["test_dir"])
    assert result.images == hard["test_images"]
    assert abs(result.top1 - hard["top1"]) < 1e-3
