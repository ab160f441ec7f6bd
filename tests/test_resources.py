"""Requests beyond this machine (threads, memory) are refused up front, in one line: never a hang
with thousands of threads, never an allocation the machine cannot hold. Every limit is read from
the running machine (its CPUs, its available memory), never assumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import assert_one_line_error, invoke, run_cli

from vitdeploy.errors import OptionError
from vitdeploy.resources import (
    ResourceError,
    available_memory,
    check_batch_memory,
    check_threads,
    physical_cores,
    usable_cpus,
)

TOO_MANY = usable_cpus() + 1


def test_check_threads():
    assert check_threads(None) is None and check_threads(1) == 1
    assert check_threads(usable_cpus()) == usable_cpus()
    assert 1 <= physical_cores() <= usable_cpus()
    for bad in (0, -3, True, "2", 2.0):
        with pytest.raises(OptionError, match="must be a positive integer"):
            check_threads(bad)
    with pytest.raises(ResourceError, match=f"--threads {TOO_MANY} is more than the {usable_cpus()} CPU"):
        check_threads(TOO_MANY)


def test_available_memory_is_read_from_the_machine():
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_memory() <= total
    check_batch_memory(1, 224)  # one image always fits
    with pytest.raises(ResourceError, match=r"a batch of 10000000 images of 224x224 .* needs about"):
        check_batch_memory(10_000_000, 224)


def test_predictor_refuses_more_threads_than_cpus(sample_export):
    from vitdeploy import Predictor

    with pytest.raises(ResourceError, match="is more than the"):
        Predictor(sample_export, threads=10_000)


@pytest.mark.parametrize("cmd", ["predict", "reference", "parity", "eval", "bench", "serve"])
def test_every_threads_option_is_bounded(sample_export, sample, tmp_path, cmd):
    from conftest import ROOT

    images = ROOT / sample["test_dir"]
    args = {"predict": ["predict", sample_export, images],
            "reference": ["reference", sample_export, "--images", images, "--out", tmp_path / "r.npz"],
            "parity": ["parity", sample_export, sample_export],
            "eval": ["eval", sample_export, "--data", images],
            "bench": ["bench", sample_export],
            "serve": ["serve", sample_export, "--port", "0"]}[cmd]
    for n in (TOO_MANY, 10_000):
        assert_one_line_error(invoke(*args, "--threads", n), f"--threads {n} is more than the")
    assert not list(tmp_path.iterdir())


def test_bench_with_ten_thousand_threads_does_not_hang(sample_export):
    # the reported case: it used to start hundreds of threads and never finish (timeout: a guard)
    assert_one_line_error(run_cli("bench", sample_export, "--threads", "10000", timeout=120),
                          "--threads 10000 is more than the")


def test_bench_batch_beyond_memory_is_refused_before_any_process(sample_export):
    """1,000,000 images: it used to build a float64 input of 22.9 GiB in the child first."""
    code = ("import sys, subprocess\n"
            "calls = []\n"
            "real = subprocess.Popen.__init__\n"
            "def spy(self, *a, **k):\n"
            "    calls.append(a[0] if a else k.get('args'))\n"
            "    return real(self, *a, **k)\n"
            "subprocess.Popen.__init__ = spy\n"
            "from vitdeploy.cli import app\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    print('exit', e.code, 'processes', len(calls), file=sys.stdout)\n")
    p = subprocess.run([sys.executable, "-c", code, "bench", str(sample_export), "--batch-sizes",
                        "1,1000000"], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "exit 1 processes 0", (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "bench at batch size 1000000" in lines[0], p.stderr
    assert "needs about" in lines[0] and "pass smaller --batch-sizes" in lines[0]


@pytest.mark.parametrize("value,needle", [("bogus=1", "has no setting 'bogus'"),
                                          ("int8", "expected KEY=VALUE"),
                                          ("onednn=maybe", "setting onednn='maybe'")])
def test_settings_option_is_checked(sample_export, sample, value, needle):
    from conftest import ROOT

    images = ROOT / sample["test_dir"]
    for args in (["predict", sample_export, images], ["eval", sample_export, "--data", images],
                 ["parity", sample_export, sample_export], ["bench", sample_export]):
        assert_one_line_error(invoke(*args, "--setting", value), needle)


def test_settings_option_applies(sample_export, sample):
    from conftest import ROOT

    digits = ROOT / sample["test_dir"] / "3"
    r = invoke("predict", sample_export, digits, "--setting", "onednn=false", "--json")
    assert r.code == 0, r.stderr
    assert len(json.loads(r.stdout)) == len(list(digits.iterdir()))
    # one artifact: a setting of another runtime is a mistake; across artifacts (parity, eval,
    # bench) each runtime takes the settings it has
    assert_one_line_error(invoke("predict", sample_export, digits, "--setting", "int8=native"),
                          "runtime 'paddle' has no setting 'int8'")
    r = invoke("eval", sample_export, "--data", ROOT / sample["test_dir"], "--limit", "5",
               "--setting", "int8=native", "--json")
    assert r.code == 0, r.stderr
