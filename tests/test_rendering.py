"""The CLI's tables, rendered into consoles of fixed widths with fixed content: a long and a short
CPU name, a long and a short path. What varies (paths, CPU names, versions) is printed on lines
rich never wraps, so it stays findable whatever the machine; tables hold fixed titles.

The suite's other tests assert on data (--json, return values), never on rendered text: this file
is where rendering is checked, and it depends on no machine."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from vitdeploy.bench import BenchReport, BenchRow
from vitdeploy.check.evaluate import EvalRow
from vitdeploy.check.parity import ParityReport, ParityRow
from vitdeploy.cli.bench_cmds import bench_tables
from vitdeploy.cli.run_cmds import eval_table, parity_table

LONG_CPU = "Other Vendor(R) Imaginary(TM) Processor 9999X 64-Core 1.0GHz"
SHORT_CPU = "AMD EPYC"
LONG_PATH = "/tmp/pytest-of-someone/pytest-1234/test_a_rather_long_test_name_for_paths0/" \
            "run/reference_of_the_distilled_deit_base_patch16_384.npz"
SHORT_PATH = "ref.npz"
WIDTHS = (60, 80, 200)


def test_long_cpu_name_is_sixty_characters():
    assert len(LONG_CPU) == 60


def _render(fn, *args, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None,
                      force_terminal=False)
    fn(*args, console=console)
    return console.export_text()


def _parity(cpu: str, path: str, passed: bool = True) -> ParityReport:
    row = ParityRow("demo-out/onnx", "onnxruntime", "fp32", "fp32", "fp32", 3.0e-6, 2.6e-7,
                    0.9999999, 1.0, 1.0, 0.0, passed, [] if passed else ["cosine 0.9 < 0.99999"],
                    notes=["this CPU has no bf16; computed in fp32"])
    ref = {"kind": "file", "file": path, "runtime": "paddle", "precision": "fp32", "machine": cpu,
           "versions": {"paddlepaddle": "3.3.1", "numpy": "1.26.4"}}
    return ParityReport(passed, ref, {"kind": "reference", "count": 24, "skipped": []}, [1, 4, 8],
                        [row])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("cpu", [LONG_CPU, SHORT_CPU])
@pytest.mark.parametrize("path", [LONG_PATH, SHORT_PATH])
def test_parity_table_keeps_reference_whole(width, cpu, path):
    text = _render(parity_table, _parity(cpu, path), width=width)
    lines = text.splitlines()
    [ref_line] = [ln for ln in lines if ln.startswith("reference: ")]
    assert path in ref_line and cpu in ref_line and "paddlepaddle 3.3.1" in ref_line
    assert "* demo-out/onnx: this CPU has no bf16; computed in fp32" in lines
    assert "reference inputs" in text and lines[-1] == "all artifacts agree with the reference"


def test_parity_table_columns_at_a_wide_console():
    text = _render(parity_table, _parity(SHORT_CPU, SHORT_PATH, passed=False), width=200)
    for needle in ("parity on 24 reference inputs, batch sizes 1,4,8", "cosine min", "onnxruntime",
                   "3.00e-06", "0.9999999", "100.0%", "FAIL cosine 0.9 < 0.99999"):
        assert needle in text, needle
    assert text.splitlines()[-1] == "parity check failed"


def _bench(cpu: str, artifact: str) -> BenchReport:
    machine = {"cpu": cpu, "physical_cores": 2, "logical_cpus": 2, "isa": ["avx2"],
               "libraries": {"vitdeploy": "0.1.0", "onnxruntime": "1.32.0"}}
    rows = [BenchRow(artifact, "lite", "fp32", "fp32", "fp32", "x86 twin of arm8 — not phone latency",
                     b, 1.5 * b, 1.6 * b, 1.7 * b, 1000 / 1.5, 0.2, 150.0, None, None,
                     "DeiT_digits_patch8_32", 5, ["timed inside the Lite worker"])
            for b in (1, 4)]
    return BenchReport(machine, 2, 123.4, rows, 0.0001,
                       {"batch_sizes": [1, 4], "warmup": 1, "repeat": 5, "seconds": None})


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("cpu", [LONG_CPU, SHORT_CPU])
def test_bench_tables_keep_the_machine_whole(width, cpu):
    text = _render(bench_tables, _bench(cpu, LONG_PATH), width=width)
    lines = text.splitlines()
    assert f"2 threads on {cpu}" in lines
    [machine] = [ln for ln in lines if ln.startswith("machine: ")]
    assert cpu in machine and "onnxruntime 1.32.0" in machine
    assert f"* {LONG_PATH}: timed inside the Lite worker" in lines


def test_bench_tables_columns_at_a_wide_console():
    text = _render(bench_tables, _bench(SHORT_CPU, "demo-out/lite_arm8"), width=200)
    for needle in ("latency p50 (ms)", "bs=1", "bs=4", "DeiT_digits_patch8_32", "p99 ms", "img/s",
                   "peak RSS MB", "% of GEMM", "fp32 GEMM", "threads:", "interleaved",
                   "timing one run costs", "x86 twin of arm8 — not phone latency", "n/a"):
        assert needle in text, needle


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", [LONG_PATH, SHORT_PATH])
def test_eval_table_keeps_the_data_path_whole(width, path):
    rows = [EvalRow("demo-out/export", "paddle", "fp32", "fp32", 0.9917, 1.0, 360),
            EvalRow("demo-out/onnx", "onnxruntime", "fp32", "fp32", 0.9917, 1.0, 360)]
    text = _render(eval_table, rows, path, width=width)
    assert f"data: {path} (360 images); delta vs demo-out/export" in text.splitlines()
    if width == 200:
        for needle in ("Δ top-1 vs first", "onnxruntime", "reference", "+0.00 pts", "99.17%"):
            assert needle in text, needle
