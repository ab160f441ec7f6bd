"""Shared fixtures: the repo root, the sample and its artifacts, the CLI run as a user would (a real
subprocess) and in-process (typer's CliRunner, for option wiring).

Tiers: ``make check`` runs ``-m "not slow"``; a test is slow when it is marked so or uses one of
the conversion fixtures below (see ``pytest_collection_modifyitems``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oracle.py
os.environ.setdefault("GLOG_minloglevel", "2")


SLOW_FIXTURES = {"sample_onnx", "sample_openvino", "sample_lite_arm8"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, timeout: float | None = None) -> Run:
    """Run ``vitdeploy`` as a user would (a real subprocess, real exit code and streams).
    ``timeout`` makes a hang fail the test (subprocess.TimeoutExpired) instead of blocking it."""
    env = {**os.environ, "GLOG_minloglevel": "2"}
    p = subprocess.run([sys.executable, "-m", "vitdeploy.cli", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, env=env, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr)


def invoke(*args: object) -> Run:
    """Run the CLI in-process (typer's CliRunner): fast, for option wiring and error paths."""
    from typer.testing import CliRunner

    from vitdeploy.cli import app

    saved = dict(os.environ)  # a command may set process-wide variables (OpenCV's pixel limit):
    try:                      # they must not leak into the tests that run after it
        r = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Run(r.exit_code, r.stdout, r.stderr)


def assert_one_line_error(r: Run, *needles: str) -> None:
    assert r.code == 1, (r.code, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


@pytest.fixture(scope="session")
def sample() -> dict:
    return json.loads((ROOT / "samples" / "sample.json").read_text())


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory, sample) -> Path:
    out = tmp_path_factory.mktemp("sample") / "export"
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"], "--out", out,
                "--labels", ROOT / sample["labels"])
    assert r.code == 0, r.stderr
    return out


def flip_patch_embed(nb: Path, weights: Path) -> None:
    """Sign-flip every other value of the patch embedding's weights inside ``nb``, in place: a
    well-formed model that computes something else (a bundle's self-check must fail on it)."""
    from vitdeploy.checkpoint import safe_load

    w = np.ascontiguousarray(safe_load(weights)["patch_embed.proj.weight"], "<f4")
    data = bytearray(nb.read_bytes())
    at = data.find(w.tobytes())
    assert at > 0, "patch_embed.proj.weight not found in the .nb"
    flipped = w.reshape(-1).copy()
    flipped[::2] *= -1
    data[at:at + w.nbytes] = flipped.tobytes()
    nb.write_bytes(bytes(data))


def randomize_state(layer, seed: int = 0, std: float = 0.02) -> dict:
    """Perturb every float tensor so biases, BN statistics and attention biases are non-trivial."""
    rng = np.random.default_rng(seed)
    new = {}
    for k, v in layer.state_dict().items():
        a = v.numpy()
        if a.dtype.kind == "f":
            a = a + rng.normal(0.0, std, a.shape).astype(a.dtype)
            if k.endswith("_variance"):
                a = np.abs(a) + 0.5
        new[k] = a
    layer.set_state_dict(new)
    return new


@pytest.fixture(scope="session")
def sample_lite_arm8(sample_export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lite") / "arm8"
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--out", out)
    assert r.code == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def sample_onnx(sample_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "onnx"
    r = run_cli("convert", sample_export, "--to", "onnx", "--out", out, "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["target"] == "onnx"
    return out


@pytest.fixture(scope="session")
def sample_openvino(sample_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "openvino"
    r = run_cli("convert", sample_export, "--to", "openvino", "--out", out)
    assert r.code == 0, r.stderr
    return out


def openvino_capabilities() -> list[str]:
    """What vitdeploy takes the CPU to offer: OpenVINO's capabilities, less those that
    $VITDEPLOY_CPU_FLAGS (the suite run as another machine would look) takes away."""
    import openvino as ov

    from vitdeploy.runtimes.openvino import capabilities

    return capabilities(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
