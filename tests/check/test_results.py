"""Result files (``--save``): written atomically with their markers, read back validated, and
never written over a file that an earlier --save did not write."""

from __future__ import annotations

import json

import pytest

from vitdeploy import __version__
from vitdeploy.check.results import ResultError, check_save_path, load_result, save_result
from vitdeploy.errors import OutputExistsError

EVAL_ROW = {"artifact": "a", "runtime": "paddle", "precision": "fp32", "artifact_precision": "fp32",
            "compute_precision": "fp32", "top1": 0.5, "top5": 1.0, "n": 4, "delta_top1": 0.0,
            "skipped": []}


def test_save_then_load(tmp_path):
    p = tmp_path / "sub" / "eval.json"  # a missing folder is created
    save_result("eval", {"data": "d", "results": [EVAL_ROW]}, p)
    doc = json.loads(p.read_text())
    assert doc["vitdeploy_result"] == "eval" and doc["vitdeploy_version"] == __version__
    assert load_result(p) == ("eval", {"data": "d", "results": [EVAL_ROW]})
    assert [q.name for q in p.parent.iterdir()] == ["eval.json"]  # no temp file left
    assert oct(p.stat().st_mode & 0o777) == "0o644"


def test_a_list_is_saved_as_results_and_nan_as_null(tmp_path):
    p = save_result("eval", [{**EVAL_ROW, "top1": float("nan")}], tmp_path / "e.json")
    text = p.read_text()
    assert "NaN" not in text
    assert load_result(p)[1]["results"][0]["top1"] is None


def test_only_a_result_is_replaced(tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text('{"config": 1}\n')
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    for p in (mine, other):
        with pytest.raises(OutputExistsError, match="exists and is not a vitdeploy result"):
            save_result("eval", [EVAL_ROW], p)
    assert mine.read_text() == '{"config": 1}\n' and other.read_text() == "keep me"
    with pytest.raises(OutputExistsError, match="is a directory"):
        check_save_path(tmp_path)
    ours = save_result("eval", [EVAL_ROW], tmp_path / "r.json")
    save_result("eval", [{**EVAL_ROW, "top1": 0.75}], ours)  # an earlier --save: replaced
    assert load_result(ours)[1]["results"][0]["top1"] == 0.75


@pytest.mark.parametrize("content,needle", [
    ("{not json", "is not valid JSON"),
    ('{"a": 1}', "is not a vitdeploy result"),
    ('{"vitdeploy_result": "speed", "results": []}', "unknown vitdeploy_result 'speed'"),
    ('{"vitdeploy_result": "eval", "results": []}', "'results' must be a non-empty list"),
    ('{"vitdeploy_result": "eval", "results": [{"artifact": "a"}]}', "results[0].runtime"),
    ('{"vitdeploy_result": "bench", "results": [1]}', "'machine' must be an object"),
    ('{"vitdeploy_result": "parity", "passed": "yes"}', "'passed' must be true/false"),
])
def test_bad_result_files_are_named(tmp_path, content, needle):
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(ResultError) as e:
        load_result(p)
    assert str(p) in str(e.value) and needle in str(e.value)
    assert "\n" not in str(e.value)
