"""``vitdeploy optimize``: candidates planned for this machine, bad input refused before anything
is written, and (slow) the whole search on the sample: table, OUT/best, optimize.json, a rerun
that reuses every build, and the report's section with its Pareto plot in a real browser."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, invoke, run_cli

from vitdeploy.errors import OptionError
from vitdeploy.search.candidates import BASELINE, CANDIDATES, plan
from vitdeploy.search.records import CandidateRow, mark_pareto, pick_winner


def _row(name: str, top1: float, p50: float, *, budget: bool = True, contender: bool = True):
    return CandidateRow(name, "rt", "", "", "fp32", "fp32", "fp32", "ok", top1=top1, p50_ms=p50,
                        throughput=1e3 / p50, within_budget=budget, contender=contender)


def test_pareto_front_and_winner():
    rows = [_row("slow-exact", 0.95, 10.0), _row("fast-lossy", 0.90, 1.0, budget=False),
            _row("mid", 0.94, 2.0), _row("dominated", 0.93, 3.0)]
    mark_pareto(rows, "latency")
    assert [r.name for r in rows if r.pareto] == ["slow-exact", "fast-lossy", "mid"]
    assert pick_winner(rows, "latency").name == "mid"  # the fast one is over budget
    assert pick_winner(rows, "throughput").name == "mid"
    for r in rows:
        r.within_budget = False
    assert pick_winner(rows, "latency") is None  # the CLI exits 2 on this
    rows[0].within_budget, rows[0].contender = True, False  # the baseline, filtered out
    assert pick_winner(rows, "latency") is None


def test_plan_filters_and_says_why(monkeypatch):
    monkeypatch.setenv("VITDEPLOY_CPU_FLAGS", "sse4_2 avx avx2 fma")  # no bf16 / fp16 here
    p = plan(None, None, calib=False)
    names = [c.name for c in p.planned]
    assert names[0] == BASELINE and "openvino-fp32" in names and "onnxruntime-fp32" in names
    assert "calib" in p.skipped["onnxruntime-int8"] and "calib" in p.skipped["openvino-int8"]
    assert "bf16" in p.skipped["openvino-bf16"]
    assert "asked" in p.skipped["lite-fp32"]  # not a server runtime: only on request
    assert set(p.skipped) | set(names) == {c.name for c in CANDIDATES}  # nothing dropped silently
    only = plan(["openvino"], ["int8"], calib=True)
    assert [c.name for c in only.planned] == ["openvino-int8", "openvino-int8-ac"]
    assert plan(None, ["fp16"], calib=False).planned[0].name == "onnxruntime-fp16"  # asked for


@pytest.mark.parametrize("runtimes,precisions,needle", [
    (["ort"], None, "unknown runtime 'ort'; available: paddle, onnxruntime"),
    (None, ["int4"], "unknown precision 'int4'; available: fp32"),
    (["paddle"], ["int8"], "no candidate left"),
])
def test_plan_refuses(runtimes, precisions, needle):
    with pytest.raises(OptionError, match=needle.replace("(", r"\(")):
        plan(runtimes, precisions, calib=True)


@pytest.mark.parametrize("args,needle", [
    ((), "--eval-data"),
    (("--max-drop", "nan"), "--max-drop nan is out of range"),
    (("--max-drop", "-1"), "--max-drop -1.0 is out of range"),
    (("--runtime", "ort"), "unknown runtime 'ort'"),
    (("--precision", "int4"), "unknown precision 'int4'"),
    (("--runtime", "paddle", "--precision", "bf16"), "no candidate left"),
    (("--objective", "speed"), "unknown --objective 'speed'"),
    (("--batch-size", "0"), "--batch-size 0"),
])
def test_bad_input_one_line_nothing_written(sample, sample_export, tmp_path, args, needle):
    out = tmp_path / "opt"
    data = () if args == () else ("--eval-data", ROOT / sample["test_dir"])
    r = invoke("optimize", sample_export, *data, "--out", out, *args)
    assert_one_line_error(r, needle)
    assert not out.exists()


def test_out_inside_source_and_foreign_out_refused(sample, sample_export, tmp_path):
    data = ("--eval-data", ROOT / sample["test_dir"])
    r = invoke("optimize", sample_export, *data, "--out", sample_export / "opt")
    assert_one_line_error(r, "inside the source")
    assert not (sample_export / "opt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    r = invoke("optimize", sample_export, *data, "--out", foreign)
    assert_one_line_error(r, "not an earlier optimize output")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    r = invoke("optimize", sample_export, "--eval-data", tmp_path / "missing", "--out",
               tmp_path / "o2")
    assert_one_line_error(r, "not found")
    flat = tmp_path / "flat"  # images, but no class sub-folders: no labels to score against
    flat.mkdir()
    shutil.copy(next((ROOT / sample["test_dir"] / "0").glob("*.png")), flat / "a.png")
    r = invoke("optimize", sample_export, "--eval-data", flat, "--out", tmp_path / "o2")
    assert_one_line_error(r, "no class sub-folders")
    assert not (tmp_path / "o2").exists()


@pytest.fixture(scope="module")
def searched(sample, sample_export, tmp_path_factory):
    """The acceptance command on the sample, run once (the default candidate set)."""
    run = tmp_path_factory.mktemp("optimize")
    out = run / "opt"
    r = run_cli("optimize", sample_export, "--eval-data", ROOT / sample["test_dir"], "--calib",
                ROOT / sample["calib_dir"], "--out", out, "--repeat", "8", timeout=1200)
    assert r.code == 0, r.stderr[-3000:]
    return run, out, r


@pytest.mark.slow
def test_search_writes_best_and_result(searched, sample):
    from vitdeploy.artifact import verify_artifact
    from vitdeploy.check.results import load_result
    from vitdeploy.predictor import Predictor

    run, out, r = searched
    assert "WINNER" in r.stdout and "Pareto" in r.stdout
    kind, data = load_result(out / "optimize.json")
    assert kind == "optimize" and data["met"] and data["winner"]
    rows = {x["name"]: x for x in data["results"]}
    assert rows[BASELINE]["baseline"] and rows[BASELINE]["speedup"] == pytest.approx(1.0)
    assert {"onnxruntime-int8", "onnxruntime-dynamic-int8", "openvino-int8",
            "openvino-int8-ac", "openvino-fp32", "onnxruntime-fp32"} <= set(rows)
    for x in rows.values():
        assert x["status"] == "ok", x
        assert math.isclose(x["delta_top1"], 100 * (x["top1"] - data["baseline_top1"]),
                            abs_tol=1e-9)
    win = rows[data["winner"]]
    assert win["within_budget"] and win["parity_passed"] and win["pareto"]
    finite = [x for x in rows.values() if x["within_budget"] and x["p50_ms"] is not None]
    assert win["p50_ms"] == min(x["p50_ms"] for x in finite)
    verify_artifact(out / "best")
    images = sorted((ROOT / sample["test_dir"] / "3").glob("*.png"))[:4]
    from vitdeploy.preprocess import preprocess_batch

    with Predictor(out / "best", runtime=win["runtime"], precision=win["requested_precision"],
                   settings=win["settings"] or None) as best:
        x = preprocess_batch(images, best.info.preprocess)
        got = best.predict_batch(x)
    with Predictor(win["artifact"], runtime=win["runtime"], precision=win["requested_precision"],
                   settings=win["settings"] or None) as orig:
        np.testing.assert_array_equal(got, orig.predict_batch(x))


@pytest.mark.slow
def test_rerun_reuses_every_candidate(searched, sample, sample_export):
    run, out, first = searched
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_dir()}
    r = run_cli("optimize", sample_export, "--eval-data", ROOT / sample["test_dir"], "--calib",
                ROOT / sample["calib_dir"], "--out", out, "--repeat", "3", "--json", timeout=900)
    assert r.code == 0, r.stderr[-3000:]
    data = json.loads(r.stdout)
    built = [x for x in data["results"] if not x["baseline"]]
    assert built and all(x["reused"] for x in built)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_dir()}
    assert {k: v for k, v in after.items() if k != "best"} == \
        {k: v for k, v in before.items() if k != "best"}  # no folder rebuilt


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="chromium is not installed (make sysdeps installs it)")
def test_report_section_in_a_browser(searched, tmp_path):
    run, out, _ = searched
    r = run_cli("report", run, "--json", timeout=300)
    assert r.code == 0, r.stderr
    info = json.loads(r.stdout)
    assert "optimize" in info["sections"] and info["results"]["optimize"] == 1
    assert (Path(info["plots_dir"]) / "pareto.png").is_file()
    url = Path(info["html"]).resolve().as_uri()
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Optimize: the fastest artifact within the accuracy budget" in dom.stdout
    assert "WINNER" in dom.stdout and 'data:image/png;base64,' in dom.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_finished_candidates(sample, sample_export, tmp_path):
    """SIGINT once the first candidate is built: exit 130 in one line, every folder left is a
    complete artifact, no temp folder remains, and the rerun reuses what was built."""
    import os
    import signal
    import sys
    import time

    from vitdeploy.artifact import verify_artifact

    out = tmp_path / "opt"
    args = [sys.executable, "-m", "vitdeploy.cli", "optimize", str(sample_export), "--eval-data",
            str(ROOT / sample["test_dir"]), "--runtime", "onnxruntime", "--runtime", "openvino",
            "--precision", "fp32", "--out", str(out), "--repeat", "3"]
    # A terminal's Ctrl-C, whatever this test runs under: a background job of a non-interactive
    # shell (nohup make test &) inherits SIGINT ignored, and Python keeps an ignored SIGINT.
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "GLOG_minloglevel": "2"},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (out / ".optimize" / "onnx.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("step")]
    assert len(lines) == 1 and "rerun the same command to resume" in lines[0], err
    assert not [q for q in out.iterdir() if ".tmp-" in q.name]
    built = [q for q in out.iterdir() if q.is_dir() and not q.name.startswith(".")]
    assert "onnx" in {q.name for q in built}
    for q in built:
        verify_artifact(q)
    r = run_cli(*args[3:], "--json", timeout=900)
    assert r.code == 0, r.stderr[-2000:]
    rows = {x["name"]: x for x in json.loads(r.stdout)["results"]}
    assert rows["onnxruntime-fp32"]["reused"]
