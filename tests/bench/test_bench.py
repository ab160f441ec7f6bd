"""``vitdeploy bench`` and ``vitdeploy.bench``: records, schema, interleaving, validation.

Timings are never asserted (the machine is shared): only that every number is there, positive
and finite, and that the runs were requested in the interleaved order."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, invoke, openvino_capabilities, run_cli

from vitdeploy.bench import BenchReport, bench, gemm_gflops, wait_quiet
from vitdeploy.bench import run as bench_run
from vitdeploy.bench.worker import NoOpRuntime
from vitdeploy.errors import VitdeployError

ROW_KEYS = {"artifact", "runtime", "precision", "artifact_precision", "compute_precision", "detail",
            "batch_size", "p50_ms", "p90_ms", "p99_ms", "throughput", "load_s", "peak_rss_mb",
            "gflops", "of_gemm"}
NUMBERS = ("p50_ms", "p90_ms", "p99_ms", "throughput", "load_s", "peak_rss_mb", "gflops", "of_gemm")


@pytest.fixture
def quick_probe(monkeypatch):
    """A smaller GEMM probe: the same code path, a fraction of the time."""
    monkeypatch.setattr(bench_run, "GEMM_N", 512)
    monkeypatch.setattr(bench_run, "GEMM_SECONDS", 0.05)


@pytest.fixture
def no_process(monkeypatch):
    """Fails the test if bench starts any process: bad input must be refused before that."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("bench started a process for an input it should have refused")

    monkeypatch.setattr(bench_run, "Child", refuse)


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


def _check_rows(rows: list[dict], with_flops: bool = True) -> None:
    for row in rows:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        for key in NUMBERS:
            if key in ("gflops", "of_gemm") and not with_flops:
                continue
            assert _positive_finite(row[key]), (key, row)
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput"] == pytest.approx(row["batch_size"] * 1e3 / row["p50_ms"])


def _assert_interleaved(report: BenchReport, artifacts: list[str], batch_sizes, runs: int) -> None:
    """Per batch size, in order: A, B, C, A, B, C, ... (``runs`` rounds), never A twice in a row."""
    expected = [(a, b) for b in batch_sizes for _ in range(runs) for a in artifacts]
    assert [(a, b) for a, _rt, b in report.schedule] == expected


def test_bench_records_every_number_interleaved(sample_export, tmp_path, quick_probe):
    twin = tmp_path / "copy"  # a second artifact (same files, another directory)
    shutil.copytree(sample_export, twin)
    arts = [str(sample_export), str(twin)]
    report = bench(arts, batch_sizes=(1, 2), warmup=1, repeat=3)
    _assert_interleaved(report, arts, (1, 2), 3)
    assert [(r.artifact, r.batch_size) for r in report.results] == \
        [(a, b) for a in arts for b in (1, 2)]
    _check_rows([vars(r) for r in report.results])
    for r in report.results:
        assert (r.runtime, r.precision, r.artifact_precision, r.compute_precision, r.detail) == \
            ("paddle", "fp32", "fp32", "fp32", "")
        assert r.model == "DeiT_digits_patch8_32" and r.samples == 3
    assert _positive_finite(report.gemm_gflops) and _positive_finite(report.overhead_ms)
    m = report.machine
    assert m["physical_cores"] >= 1 and isinstance(m["isa"], list) and m["cpu"]
    assert set(m["libraries"]) == {"vitdeploy", "paddlepaddle", "onnxruntime", "openvino", "numpy"}
    assert report.threads >= 1 and set(m["thread_env"].values()) == {str(report.threads)}


def test_bench_json_seconds_and_threads(sample_export, quick_probe):
    r = invoke("bench", sample_export, "--batch-sizes", "1", "--seconds", "0.01", "--warmup", "0",
               "--threads", "1", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert {"machine", "threads", "gemm_gflops", "results"} <= set(data)
    assert data["threads"] == 1 and data["machine"]["thread_env"]["OMP_NUM_THREADS"] == "1"
    assert _positive_finite(data["gemm_gflops"])
    assert data["settings"]["seconds"] == 0.01 and data["settings"]["repeat"] is None
    [row] = data["results"]
    _check_rows([row])
    assert row["samples"] >= bench_run.MIN_ROUNDS  # --seconds still takes a few rounds


def test_bench_tables(sample_export, quick_probe):
    # the tables' content is checked at fixed widths in tests/test_rendering.py
    r = invoke("bench", sample_export, "--batch-sizes", "1,2", "--repeat", "2", "--warmup", "1")
    assert r.code == 0 and r.stdout, r.stderr


def test_bench_no_verify_and_unknown_model(sample_export, tmp_path, quick_probe):
    """An edited artifact is refused unless --no-verify; a model the zoo does not know has no
    FLOPs, so no GFLOP/s (null in JSON), everything else measured."""
    edited = tmp_path / "edited"
    shutil.copytree(sample_export, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["model"] = "MyOwnViT"
    (edited / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("bench", edited, "--repeat", "1"), "manifest", "--no-verify")
    r = invoke("bench", edited, "--no-verify", "--batch-sizes", "1", "--repeat", "1",
               "--warmup", "0", "--json")
    assert r.code == 0, r.stderr
    [row] = json.loads(r.stdout)["results"]
    assert row["gflops"] is None and row["of_gemm"] is None and row["model"] == "MyOwnViT"
    _check_rows([row], with_flops=False)


@pytest.mark.parametrize("args, needles", [
    (["--runtime", "ort"], ["unknown runtime 'ort'", "available: paddle, onnxruntime"]),
    (["--batch-sizes", "0"], ["--batch-sizes", "positive integers"]),
    (["--batch-sizes", "1,x"], ["--batch-sizes", "positive integers"]),
    (["--batch-sizes", "-4"], ["--batch-sizes", "positive integers"]),
    (["--repeat", "5", "--seconds", "1"], ["--repeat and --seconds both given"]),
    (["--seconds", "-1"], ["--seconds", "> 0"]),
    (["--seconds", "0"], ["--seconds", "> 0"]),
    (["--seconds", "nan"], ["--seconds", "finite"]),
    (["--seconds", "inf"], ["--seconds", "finite"]),
    (["--repeat", "0"], ["--repeat", "positive integer"]),
    (["--warmup", "-1"], ["--warmup", ">= 0"]),
    (["--threads", "0"], ["--threads", "positive integer"]),
    (["--precision", "int4"], ["precision 'int4'", "bf16"]),
    (["--repeat", "many"], ["--repeat"]),
])
def test_bench_bad_options_one_line(sample_export, args, needles, no_process):
    assert_one_line_error(invoke("bench", sample_export, *args), *needles)


def test_bench_bad_artifacts_one_line(sample_export, tmp_path, no_process):
    onnx_like = tmp_path / "onnx_like"  # what an ONNX artifact holds, as far as paddle can tell
    onnx_like.mkdir()
    shutil.copy(sample_export / "inference.yml", onnx_like)
    (onnx_like / "model.onnx").write_bytes(b"not read")
    assert_one_line_error(invoke("bench", onnx_like, "--runtime", "paddle"),
                          "runtime 'paddle'", "inference.json")
    assert_one_line_error(invoke("bench", tmp_path / "missing"), "not found")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(sample_export, corrupt)
    with open(corrupt / "inference.yml", "a") as f:
        f.write("# edited\n")
    assert_one_line_error(invoke("bench", sample_export, corrupt), "inference.yml",
                          "sha256", "--no-verify")


def test_bench_library_validates_before_running(sample_export, no_process):
    for kwargs in ({"repeat": 2, "seconds": 1.0}, {"seconds": float("nan")}, {"seconds": True},
                   {"batch_sizes": ()}, {"batch_sizes": (1, 0)}, {"warmup": -1}, {"repeat": 1.5},
                   {"threads": 0}, {"runtimes": ["tensorrt"]}):
        with pytest.raises(VitdeployError):
            bench([sample_export], **kwargs)
    with pytest.raises(VitdeployError, match="no artifact"):
        bench([])


def test_gemm_probe_positive():
    assert _positive_finite(gemm_gflops(threads=1, n=256, seconds=0.05))


def test_runtime_timing_api():
    """Runtime.warmup / time_runs: what bench (and serve) time, around predict only."""
    class Counting(NoOpRuntime):
        calls = 0

        def predict(self, batch):
            self.calls += 1
            return batch

    rt = Counting(Path("no-op"), threads=1)
    x = np.zeros((2, 3, 8, 8), np.float32)
    rt.warmup(x, runs=2)
    assert rt.calls == 2
    rt.warmup(x, runs=1, seconds=0.01)  # at least one run, then on until 10 ms have passed
    assert rt.calls >= 3
    times = rt.time_runs(x, runs=5)
    assert len(times) == 5 and all(t >= 0 and math.isfinite(t) for t in times)


def test_wait_quiet_returns_for_an_idle_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert 0 <= wait_quiet([proc.pid], limit=5.0) < 5.0
    finally:
        proc.kill()
        proc.wait()


def test_import_vitdeploy_stays_light():
    code = ("import sys, vitdeploy; assert 'numpy' not in sys.modules and 'vitdeploy.bench' not in "
            "sys.modules; assert vitdeploy.Predictor and 'vitdeploy.predictor' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_bench_runtimes_interleaved(sample_export, sample_onnx, sample_openvino, quick_probe):
    arts = [str(sample_export), str(sample_onnx), str(sample_openvino)]
    report = bench(arts, batch_sizes=(1, 2), warmup=1, repeat=2)
    _assert_interleaved(report, arts, (1, 2), 2)
    assert {r.runtime for r in report.results} == {"paddle", "onnxruntime", "openvino"}
    _check_rows([vars(r) for r in report.results])
    both = bench([sample_onnx], runtimes=["onnxruntime", "openvino"], batch_sizes=(1,), repeat=2)
    assert [(r.artifact, r.runtime) for r in both.results] == \
        [(str(sample_onnx), "onnxruntime"), (str(sample_onnx), "openvino")]
    assert [rt for _a, rt, _b in both.schedule] == ["onnxruntime", "openvino"] * 2
    assert_one_line_error(run_cli("bench", sample_onnx, "--runtime", "paddle"),
                          "holds no model file runtime 'paddle' can load")


def test_bench_lite_is_the_x86_twin(sample_lite_arm8):
    r = run_cli("bench", sample_lite_arm8, "--runtime", "lite", "--batch-sizes", "1,2", "--repeat",
                "2", "--json", timeout=600)
    assert r.code == 0, r.stderr
    rows = json.loads(r.stdout)["results"]
    _check_rows(rows)
    for row in rows:
        assert row["runtime"] == "lite"
        assert row["detail"] == "x86 twin of arm8 — not phone latency"


def test_bench_precisions_and_session(sample_openvino, sample_onnx, quick_probe):
    """fp32 and bf16 of one IR are two rows; a runtime without precision choices runs once."""
    report = bench([sample_openvino, sample_onnx], precisions=["fp32", "bf16"], batch_sizes=(1,),
                   repeat=1, warmup=0)
    rows = [(r.runtime, r.compute_precision, r.notes) for r in report.results]
    assert [r[0] for r in rows] == ["openvino", "openvino", "onnxruntime"]
    assert rows[0][1] == "fp32"
    if "BF16" in openvino_capabilities():  # really bf16, nothing to say
        assert rows[1][1:] == ("bf16", []), rows[1]
    else:  # this CPU (or the one $VITDEPLOY_CPU_FLAGS pretends) has none: fp32, and said
        assert rows[1][1:] == ("fp32", ["this CPU has no bf16; computed in fp32"]), rows[1]
    assert [r.requested_precision for r in report.results] == ["fp32", "bf16", None]
    assert report.results[0].session == {"hint": "LATENCY", "streams": "auto", "int8": "auto"}
    assert report.results[2].session["graph_optimization"] == "all"
    with pytest.raises(VitdeployError, match="precision 'int4'"):
        bench([sample_openvino], precisions=["int4"])
