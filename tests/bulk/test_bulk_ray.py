"""Bulk inference on Ray Data (``--ray auto``, a real local Ray): the same rows as in-process and
as ``predict --json``, eval's numbers identical, an actor killed mid-run (no image missing or
duplicated), a worker that cannot load the artifact (one line, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, run_cli

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is installed with ray[data]")
pytest.importorskip("ray.data", reason="ray[data] is not installed")
pytestmark = pytest.mark.slow
ACTOR = b"MapBatches(BulkModel)"  # in the process title Ray gives a model actor


def test_ray_rows_equal_predict_json(sample, sample_onnx, tmp_path):
    data = ROOT / sample["test_dir"]
    r = run_cli("predict", sample_onnx, data, "--json", timeout=300)
    assert r.code == 0, r.stderr
    want = json.loads(r.stdout)
    out = tmp_path / "preds.parquet"
    r = run_cli("predict", sample_onnx, data, "--out", out, "--ray", "auto", "--json",
                timeout=600)
    assert r.code == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["engine"].startswith("ray: 2 actor(s)")
    rows = pq.read_table(out).to_pylist()
    assert [x["image"] for x in rows] == [p["image"] for p in want] and len(rows) == 360
    for x, p in zip(rows, want, strict=True):
        assert x["ok"] and x["topk_ids"] == [t["class_id"] for t in p["top"]]
        assert x["topk_scores"] == pytest.approx([t["score"] for t in p["top"]], abs=1e-6)


def test_eval_on_ray_equals_in_process(sample, sample_export, sample_onnx):
    args = ("eval", sample_export, sample_onnx, "--data", ROOT / sample["test_dir"], "--json")
    local = run_cli(*args, timeout=300)
    on_ray = run_cli(*args, "--ray", "auto", "--workers", "1", timeout=600)
    assert local.code == 0 and on_ray.code == 0, on_ray.stderr[-2000:]
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert a == b and a[0]["n"] == 360  # top-1, top-5, delta, precision, skipped: all equal


def _actor_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if ACTOR in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_actor_killed_mid_run_loses_and_duplicates_nothing(sample, sample_onnx, tmp_path):
    data = tmp_path / "imgs"
    for copy in range(16):  # 5,760 images one per batch: the run outlives the kill
        shutil.copytree(ROOT / sample["test_dir"], data / f"copy{copy}")
    out = tmp_path / "preds.parquet"
    env = {**os.environ, "GLOG_minloglevel": "2"}
    p = subprocess.Popen([sys.executable, "-m", "vitdeploy.cli", "predict", str(sample_onnx),
                          str(data), "--out", str(out), "--ray", "auto", "--workers", "1",
                          "--batch-size", "1", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (first := _actor_pids()) and time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()
            time.sleep(0.2)
        assert first, "no model actor started"
        time.sleep(3)  # the actor has loaded the model and is working through batches
        assert p.poll() is None, "the run ended before the kill: make the data larger"
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        while not (_actor_pids() - first) and p.poll() is None:
            time.sleep(0.2)
        restarted = bool(_actor_pids() - first) or p.poll() is not None
        stdout, stderr = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr[-2000:]
    assert restarted
    images = sorted(str(f) for f in data.rglob("*.png"))
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(images) == 5760 == json.loads(stdout)["images"]
    assert sorted(x["image"] for x in rows) == images  # none missing, none twice
    assert all(x["ok"] and len(x["topk_ids"]) == 5 for x in rows)


def test_ctrl_c_keeps_a_partial_file_that_resume_finishes(sample, sample_onnx, tmp_path):
    data = tmp_path / "imgs"
    for copy in range(48):  # 17,280 images one per batch: ~40 s here, the first rows after ~4 s
        # (a machine twice as fast still runs well past the Ctrl-C)
        shutil.copytree(ROOT / sample["test_dir"], data / f"copy{copy}")
    out = tmp_path / "preds.jsonl"
    env = {**os.environ, "GLOG_minloglevel": "2"}
    p = subprocess.Popen(  # SIGINT restored: a background 'make test' inherits it ignored
        [sys.executable, "-m", "vitdeploy.cli", "predict", str(sample_onnx), str(data), "--out",
         str(out), "--ray", "auto", "--workers", "1", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not _actor_pids() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.2)
        time.sleep(8)  # the first shard's rows have reached the driver
        assert p.poll() is None, "the run ended before Ctrl-C: make the data larger"
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    partial = tmp_path / ".preds.jsonl.partial"
    assert p.returncode == 130 and "--resume" in stderr and partial.is_file(), stderr[-2000:]
    assert not out.exists() and not (tmp_path / ".preds.jsonl.writing").exists()
    kept = len(partial.read_text().splitlines())
    r = run_cli("predict", sample_onnx, data, "--out", out, "--resume", "--json", timeout=300)
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["resumed"] == kept and res["predicted"] == 17280 - kept
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert sorted(x["image"] for x in rows) == sorted(str(f) for f in data.rglob("*.png"))
    assert not partial.exists()


def test_worker_that_cannot_load_the_artifact_fails_in_one_line(sample, sample_onnx, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sample_onnx, broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes()[:1000])
    out = tmp_path / "out" / "preds.parquet"
    out.parent.mkdir()
    # --no-verify: the driver's manifest check would refuse it first; the driver loads no model
    r = run_cli("predict", broken, ROOT / sample["test_dir"], "--out", out, "--ray", "auto",
                "--no-verify", timeout=600)
    assert_one_line_error(r, "a Ray worker on", "could not load", "model.onnx")
    assert not any(out.parent.iterdir())
