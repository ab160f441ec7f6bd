"""``vitdeploy predict --out``: the in-process bulk engine: the same top-k as ``predict --json``
row for row, failed rows for bad images, resume, bad input (nothing written)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, assert_one_line_error, invoke

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is installed with ray[data]")


def test_parquet_rows_equal_predict_json(sample, sample_export, tmp_path):
    data = ROOT / sample["test_dir"]
    r = invoke("predict", sample_export, data, "--json")
    assert r.code == 0, r.stderr
    want = {p["image"]: p for p in json.loads(r.stdout)}
    out = tmp_path / "preds.parquet"
    r = invoke("predict", sample_export, data, "--out", out, "--json")
    assert r.code == 0, r.stderr
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(want) == 360 and all(x["ok"] for x in rows)
    for x in rows:
        top = want[x["image"]]["top"]
        assert x["topk_ids"] == [t["class_id"] for t in top]
        assert x["topk_scores"] == pytest.approx([t["score"] for t in top], abs=1e-6)


def test_bad_image_is_a_failed_row_and_resume_adds_only_new(sample, sample_export, tmp_path):
    data = tmp_path / "imgs"
    shutil.copytree(ROOT / sample["test_dir"] / "3", data)
    (data / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "preds.jsonl"
    r = invoke("predict", sample_export, data, "--out", out, "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["failed"] == 1 and res["images"] == len(list(data.iterdir()))
    bad = [json.loads(ln) for ln in out.read_text().splitlines() if not json.loads(ln)["ok"]]
    assert bad[0]["image"].endswith("broken.png") and bad[0]["error"]
    shutil.copy(ROOT / sample["test_dir"] / "4" / sorted(
        (ROOT / sample["test_dir"] / "4").iterdir())[0].name, data / "new.png")
    r = invoke("predict", sample_export, data, "--out", out, "--resume", "--json")
    res = json.loads(r.stdout)
    assert (res["resumed"], res["predicted"] + res["failed"]) == (res["images"] - 1, 1)
    assert len(out.read_text().splitlines()) == res["images"]


@pytest.mark.parametrize("args,needle", [
    (("--out", "preds.csv"), "unknown format '.csv'"),
    (("--out", "preds.parquet", "--workers", "0"), "--workers 0"),
    (("--out", "preds.parquet", "--ray", "127.0.0.1:1"), "cannot reach a ray cluster at 127.0.0.1:1"),
    (("--out", "preds.parquet", "--ray", "nohost"), "host:port"),
    (("--out", "/proc/preds.parquet"), "not a writable folder"),
    (("--out", "preds.parquet", "--ray", "auto", "--workers", "0"), "--workers 0"),
])
def test_bad_input(sample, sample_export, tmp_path, args, needle):
    args = tuple(str(tmp_path / a) if a.startswith("preds") else a for a in args)
    r = invoke("predict", sample_export, ROOT / sample["test_dir"], *args)
    assert_one_line_error(r, needle)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args,needle", [
    (("predict", "--ray", "auto"), "--ray applies to bulk prediction: add --out"),
    (("predict", "--resume"), "--resume applies to bulk prediction"),
    (("eval", "--workers", "2"), "--workers applies to --ray"),
])
def test_bulk_options_need_their_mode(sample, sample_export, tmp_path, args, needle):
    data = ROOT / sample["test_dir"]
    cmd, *rest = args
    where = ("--data", data) if cmd == "eval" else (data,)
    r = invoke(cmd, sample_export, *where, *rest)
    assert_one_line_error(r, needle)


def test_force_never_replaces_an_input(sample, sample_export, tmp_path):
    listed = tmp_path / "paths.jsonl"  # a text file of paths, named like an output
    images = sorted((ROOT / sample["test_dir"] / "3").iterdir())[:3]
    listed.write_text("".join(f"{p}\n" for p in images))
    before = listed.read_bytes()
    r = invoke("predict", sample_export, listed, "--out", listed, "--force")
    assert_one_line_error(r, "is one of the inputs")
    assert listed.read_bytes() == before and sorted(tmp_path.iterdir()) == [listed]

