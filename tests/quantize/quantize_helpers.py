"""What the int8 recipe tests share: the sample's calibration and evaluation data, and near-tie
images where int8's noise can flip fp32's answer (to exercise the accuracy budget)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from vitdeploy.artifact import read_artifact_info
from vitdeploy.check.evaluate import labelled_data
from vitdeploy.preprocess import preprocess_batch
from vitdeploy.quantize.calib import Calibration, EvalSet, load_calibration

Predict = Callable[[Path, np.ndarray], np.ndarray]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sample_data(sample: dict, artifact: Path) -> tuple[Calibration, EvalSet]:
    info = read_artifact_info(artifact)
    calib = load_calibration(ROOT / sample["calib_dir"], info.preprocess)
    pairs = labelled_data(ROOT / sample["test_dir"], info.labels)
    x = preprocess_batch([p for p, _ in pairs], info.preprocess)
    return calib, EvalSet(x, np.array([c for _, c in pairs], dtype=np.int64), "test")


def boundary_set(predict: Predict, model: Path, eval_set: EvalSet, steps: int, n: int = 48) -> EvalSet:
    """Blends of two test digits of different classes, bisected ``steps`` times towards where fp32
    changes its answer, labelled with fp32's answer: the more steps, the thinner fp32's margin and
    the more answers int8's noise flips (fp32 top-1 is 1.0 by construction)."""
    i = np.arange(n) * 7 % len(eval_set.x)
    a, b = eval_set.x[i], eval_set.x[(i + len(eval_set.x) // 2) % len(eval_set.x)]
    first = predict(model, a).argmax(1)
    lo, hi = np.zeros(n, np.float32), np.ones(n, np.float32)
    for _ in range(steps):
        mid = (lo + hi) / 2
        same = predict(model, a + mid[:, None, None, None] * (b - a)).argmax(1) == first
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    x = (a + lo[:, None, None, None] * (b - a)).astype(np.float32)
    return EvalSet(x, predict(model, x).argmax(1), f"boundary-{steps}")


def assert_keeps_top1(predict: Predict, fp32_model: Path, int8_model: Path, record: dict,
                      data: tuple[Calibration, EvalSet], sample: dict) -> None:
    """The recipe's record and the written model agree, and int8 keeps the sample's top-1 within
    the 0.5-point budget with >= 99% agreement with fp32."""
    calib, eval_set = data
    ref = predict(fp32_model, eval_set.x)
    fp32 = float((ref.argmax(1) == eval_set.y).mean())
    assert fp32 == pytest.approx(sample["top1"], abs=0.005)
    acc = record["accuracy"]
    assert acc["fp32_top1"] == pytest.approx(fp32, abs=1e-6) and acc["n"] == len(eval_set.y)
    assert acc["drop_points"] <= 0.5 and record["kept_float"] == []
    out = predict(int8_model, eval_set.x)
    assert (out.argmax(1) == eval_set.y).mean() == pytest.approx(acc["int8_top1"], abs=1e-6)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99
    assert record["mode"] == "int8" and record["calibration"] == calib.to_record()
