"""`vitdeploy predict` / `eval` and the Predictor on the bundled sample."""

from __future__ import annotations

import json

import numpy as np
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy import Predictor


def test_predict_json_format(sample_export, sample):
    img = sorted((ROOT / sample["test_dir"] / "7").glob("*.png"))[0]
    r = run_cli("predict", sample_export, img, "--topk", "3", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data[0]["image"] == str(img)
    top = data[0]["top"]
    assert [set(t) for t in top] == [{"class_id", "label", "score"}] * 3
    assert top[0]["label"] == "7" and top[0]["class_id"] == 7
    assert top[0]["score"] >= top[1]["score"] >= top[2]["score"]


def test_predict_directory_and_batches_agree(sample_export, sample):
    folder = ROOT / sample["test_dir"] / "3"
    with Predictor(sample_export) as p:
        a = p.predict_images([folder], batch_size=1)
        b = p.predict_images([folder], batch_size=16)
    assert len(a) == len(list(folder.glob("*.png")))
    for x, y in zip(a, b, strict=False):
        assert [t.class_id for t in x.top] == [t.class_id for t in y.top]
        assert np.isclose(x.top[0].score, y.top[0].score, atol=1e-5)


def test_sample_accuracy_through_export(sample_export, sample):
    r = run_cli("eval", sample_export, "--data", ROOT / sample["test_dir"], "--json",
                "--min-top1", "0.97")
    assert r.code == 0, r.stderr
    [res] = json.loads(r.stdout)
    assert res["n"] == sample["test_images"] == 360
    assert res["top1"] >= 0.97
    assert abs(res["top1"] - sample["top1"]) < 1e-3  # sample.json records what the export gives


def test_eval_budget_not_met_exits_2(sample_export, sample):
    r = run_cli("eval", sample_export, "--data", ROOT / sample["test_dir"], "--min-top1", "1.0")
    assert r.code == 2


def test_sample_layout(sample):
    for key in ("weights", "labels", "test_dir", "calib_dir"):
        assert (ROOT / sample[key]).exists(), key
    calib = list((ROOT / sample["calib_dir"]).rglob("*.png"))
    assert 0 < len(calib) <= 200
    test_names = {p.name for p in (ROOT / sample["test_dir"]).rglob("*.png")}
    assert not test_names & {p.name for p in calib}  # calibration comes from the training split
    assert sum(f.stat().st_size for f in (ROOT / "samples").rglob("*") if f.is_file()) < 25e6


def test_unknown_runtime(sample_export):
    assert_one_line_error(run_cli("predict", sample_export, "x.png", "--runtime", "ort"),
                          "unknown runtime 'ort'", "available: paddle")


def test_missing_artifact(tmp_path):
    assert_one_line_error(run_cli("predict", tmp_path / "nope", "x.png"), "not found")


def test_artifact_without_yml(tmp_path, sample_export):
    d = tmp_path / "bare"
    d.mkdir()
    (d / "inference.json").write_bytes((sample_export / "inference.json").read_bytes())
    assert_one_line_error(run_cli("predict", d, "x.png"), "inference.yml")


def test_corrupt_params(tmp_path, sample_export, sample):
    import shutil

    d = tmp_path / "corrupt"
    shutil.copytree(sample_export, d)
    (d / "inference.pdiparams").write_bytes(b"garbage")
    img = sorted((ROOT / sample["test_dir"] / "1").glob("*.png"))[0]
    r = run_cli("predict", d, img)
    assert r.code == 1 and "Traceback" not in r.stderr
