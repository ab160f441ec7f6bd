"""`vitdeploy eval ARTIFACT... --data DATA`: several artifacts side by side, on an ImageNet-style
folder or a PaddleClas list file, and the library under it (vitdeploy/evaluate.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, invoke

from vitdeploy.check.evaluate import evaluate, evaluate_many, labelled_data
from vitdeploy.errors import ImageError
from vitdeploy.predictor import Predictor

DIGITS = [str(d) for d in range(10)]
ROW_KEYS = {"artifact", "runtime", "precision", "artifact_precision", "compute_precision", "top1",
            "top5", "n", "delta_top1", "skipped"}


def _test_dir(sample) -> Path:
    return ROOT / sample["test_dir"]


def _first_images(sample, digit: str, n: int) -> list[Path]:
    return sorted((_test_dir(sample) / digit).glob("*.png"))[:n]


# -- the library -----------------------------------------------------------------------------------

def test_labelled_data_folder_and_list_file(sample, tmp_path):
    folder = labelled_data(_test_dir(sample), DIGITS)
    assert len(folder) == sample["test_images"] and folder == sorted(folder, key=lambda p: (p[1], p[0]))
    (tmp_path / "sub").mkdir()
    a, b = _first_images(sample, "3", 1)[0], _first_images(sample, "7", 1)[0]
    shutil.copy(a, tmp_path / "sub" / "a.png")
    (tmp_path / "val.txt").write_text(f"# PaddleClas val list\n\nsub/a.png 3\n  {b} 7  \r\n")
    assert labelled_data(tmp_path / "val.txt", DIGITS) == [(tmp_path / "sub" / "a.png", 3), (b, 7)]


@pytest.mark.parametrize("line, needle", [("a.png", "val.txt:2: expected 'image_path class_id'"),
                                          ("a.png seven", "val.txt:2: expected"),
                                          ("a.png 10", "val.txt:2: class id 10 is out of range")])
def test_labelled_list_errors_name_the_line(tmp_path, line, needle):
    (tmp_path / "val.txt").write_text(f"# header\n{line}\n")
    with pytest.raises(ImageError, match=needle):
        labelled_data(tmp_path / "val.txt", DIGITS)


def test_labelled_data_not_found_or_empty(tmp_path):
    with pytest.raises(ImageError, match="labelled data not found: .*PaddleClas list file"):
        labelled_data(tmp_path / "nope", DIGITS)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ImageError, match="lists no images"):
        labelled_data(tmp_path / "empty.txt", DIGITS)


def test_evaluate_many_decodes_each_image_once(sample_export, sample, monkeypatch):
    import vitdeploy.check.evaluate as ev

    calls: list[Path] = []
    real = ev.decode_image
    monkeypatch.setattr(ev, "decode_image", lambda p, m=None: calls.append(p) or real(p, m))
    rows = evaluate_many([sample_export, sample_export], _test_dir(sample), limit=20, batch_size=8)
    assert len(calls) == 20 and [r.n for r in rows] == [20, 20]
    assert rows[0].delta_top1 == rows[1].delta_top1 == 0.0
    with Predictor(sample_export) as pred:  # the one-artifact API gives the same numbers
        single = evaluate(pred, _test_dir(sample))
    full = evaluate_many([sample_export], _test_dir(sample))[0]
    assert (full.n, full.top1, full.top5) == (single.images, single.top1, single.top5)


# -- the command line --------------------------------------------------------------------------------

@pytest.mark.slow
def test_eval_two_artifacts_table_and_json(sample_export, sample_onnx, sample):
    r = invoke("eval", sample_export, sample_onnx, "--data", _test_dir(sample), "--json")
    assert r.code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [set(row) for row in rows] == [ROW_KEYS] * 2
    assert [row["artifact"] for row in rows] == [str(sample_export), str(sample_onnx)]
    assert [row["runtime"] for row in rows] == ["paddle", "onnxruntime"]
    assert all(row["precision"] == row["artifact_precision"] == "fp32" for row in rows)
    assert all(row["n"] == sample["test_images"] and row["skipped"] == [] for row in rows)
    assert abs(rows[0]["top1"] - sample["top1"]) < 1e-3
    assert rows[0]["delta_top1"] == 0.0 and abs(rows[1]["delta_top1"]) <= 0.3  # at most 1 image
    r = invoke("eval", sample_export, sample_onnx, "--data", _test_dir(sample))
    assert r.code == 0 and r.stdout, r.stderr  # its content: tests/test_rendering.py


def test_eval_list_file_relative_path_and_comment(sample_export, sample, tmp_path):
    (tmp_path / "imgs").mkdir()
    rel = _first_images(sample, "3", 2)
    for p in rel:
        shutil.copy(p, tmp_path / "imgs" / p.name)
    absolute = _first_images(sample, "7", 1)[0]
    lines = ["# image class_id", "", *(f"imgs/{p.name} 3" for p in rel), f"{absolute} 7",
             "imgs/gone.png 1"]
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    r = invoke("eval", sample_export, "--data", tmp_path / "val.txt", "--json")
    assert r.code == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["n"] == 3 and row["top1"] == 1.0
    assert [s["image"] for s in row["skipped"]] == [str(tmp_path / "imgs" / "gone.png")]
    assert "skipped 1 unusable image" in r.stderr
    r = invoke("eval", sample_export, "--data", tmp_path / "val.txt", "--bad-images", "stop")
    assert_one_line_error(r, "gone.png", "no such file")


def test_eval_malformed_list_line_is_one_line(sample_export, tmp_path):
    (tmp_path / "val.txt").write_text("# ok\na.png 1\nb.png\n")
    assert_one_line_error(invoke("eval", sample_export, "--data", tmp_path / "val.txt"),
                          f"{tmp_path / 'val.txt'}:3:", "expected 'image_path class_id'")


def test_eval_limit_and_batch_size(sample_export, sample):
    r = invoke("eval", sample_export, "--data", _test_dir(sample), "--limit", "7",
               "--batch-size", "3", "--json")
    assert r.code == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["n"] == 7 and row["top1"] == 1.0  # the first 7: all of class 0
    for bad in (("--limit", "0"), ("--batch-size", "0")):
        assert_one_line_error(invoke("eval", sample_export, "--data", _test_dir(sample), *bad),
                              bad[0])


def test_eval_mismatched_labels_exit_1(sample_export, sample, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(sample_export, other)
    (other / "labels.txt").write_text("zero\n" + "".join(f"{d}\n" for d in range(1, 10)))
    r = invoke("eval", sample_export, other, "--data", _test_dir(sample), "--no-verify")
    assert_one_line_error(r, "other labels than the first artifact", "class 0 is 'zero' vs '0'")


def test_eval_folder_not_matching_labels_is_one_line(sample_export, tmp_path):
    (tmp_path / "data" / "cats").mkdir(parents=True)
    assert_one_line_error(invoke("eval", sample_export, "--data", tmp_path / "data"),
                          "cats matches no label")


def test_eval_min_top1_exit_2(sample_export, sample):
    r = invoke("eval", sample_export, sample_export, "--data", _test_dir(sample), "--min-top1", "1.0")
    assert r.code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all("is below --min-top1 1.0" in ln for ln in lines)
    r = invoke("eval", sample_export, "--data", _test_dir(sample), "--min-top1", "0.97")
    assert r.code == 0, r.stderr


def test_eval_without_data_is_one_line(sample_export, sample):
    # the old two-positional form: the folder is not taken for an artifact
    assert_one_line_error(invoke("eval", sample_export, _test_dir(sample)),
                          "pass the labelled images with --data DIR")
