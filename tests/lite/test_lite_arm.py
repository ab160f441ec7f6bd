"""Paddle Lite's own ARM kernels here: the light library built from the vendored source
(``vitdeploy lite setup --arm``), the runner under QEMU user-mode emulation, the ``lite-arm``
runtime everywhere a runtime is, and parity on the ARM kernels.

The build takes ~30 minutes once: tests that need it skip with the reason when it is absent
(``make arm-check`` builds it and runs them); the checks of bad input and of the toolchain's own
logic run everywhere."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, invoke, run_cli

from vitdeploy.lite import arm

ARMV8 = arm.status("armv8")
needs_armv8 = pytest.mark.skipif(not ARMV8.ready, reason=f"ARM kernels (armv8) {ARMV8.problem}: "
                                 "'make arm-check' builds them")
ARMV7 = arm.status("armv7")
needs_armv7 = pytest.mark.skipif(not ARMV7.ready, reason=f"ARM kernels (armv7) {ARMV7.problem}: "
                                 "'vitdeploy lite setup --arm armv7' builds them")


def test_abis_and_the_vendored_source():
    assert arm.abi_for("arm8").name == "armv8" and arm.abi_for("armv7").name == "armv7"
    with pytest.raises(arm.ArmToolchainError, match="no ARM kernels run a 'x86' .nb"):
        arm.abi_for("x86")
    with pytest.raises(arm.ArmToolchainError, match="unknown ARM ABI 'armv9'; choose armv8, armv7"):
        arm.get_abi("armv9")
    arm._check_source()  # the tarball ships with vitdeploy and matches its sha256
    keys = {arm.build_key(a) for a in arm.ABIS.values()}
    assert len(keys) == 2 and all(k.startswith("v2.13-rc-") for k in keys)


def test_missing_tools_are_named_with_their_packages(monkeypatch):
    monkeypatch.setattr(arm.shutil, "which", lambda _cmd: None)  # a machine without any of them
    missing = arm.missing_tools(arm.ABIS["armv8"])
    assert ("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu") in missing
    text = arm.missing_text(missing)
    assert "g++-aarch64-linux-gnu" in text and "cmake" in text and "make sysdeps" in text


def test_setup_refuses_an_unknown_abi_in_one_line():
    assert_one_line_error(invoke("lite", "setup", "--arm", "armv9"), "unknown ARM ABI 'armv9'")


@needs_armv8
def test_parity_on_the_arm_kernels(sample_export, sample_lite_arm8, sample):
    """The acceptance run: the sample's arm8 .nb on Paddle Lite's NEON kernels vs Paddle fp32."""
    r = run_cli("parity", sample_export, sample_lite_arm8, "--runtime", "lite-arm", "--images",
                ROOT / sample["test_dir"], "--batch-sizes", "1,8", "--json", timeout=1800)
    assert r.code == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)["results"][0]
    assert row["runtime"] == "lite-arm" and row["detail"].startswith("armv8 ARM kernels under")
    assert row["compute_precision"] == "fp32" and row["cosine_min"] >= 0.99999
    assert row["top1_agreement"] == 1.0 and row["max_abs"] < 1e-4


@needs_armv8
def test_arm_kernels_are_the_default_for_an_arm_build(sample_lite_arm8, sample):
    img = sorted((ROOT / sample["test_dir"] / "7").glob("*.png"))[0]
    r = run_cli("predict", sample_lite_arm8, img, "--json", timeout=600)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)[0]["top"][0]["label"] == "7"
    from vitdeploy import Predictor

    with Predictor(sample_lite_arm8) as p:
        assert p.runtime.name == "lite-arm"
        x = np.zeros((2, 3, p.input_size, p.input_size), np.float32)
        assert p.predict_batch(x).shape == (2, 10)
    with Predictor(sample_lite_arm8, runtime="lite") as p:
        assert p.runtime.name == "lite" and "lite-arm runs the ARM kernels" in p.runtime.notes[0]


@needs_armv8
def test_weight_only_int8_on_the_arm_kernels(sample_export, tmp_path, sample):
    out = tmp_path / "int8"
    assert run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--quantize", "int8",
                   "--out", out).code == 0
    r = run_cli("parity", sample_export, out, "--runtime", "lite-arm", "--images",
                ROOT / sample["test_dir"], "--batch-sizes", "8", "--json", timeout=1800)
    assert r.code == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)["results"][0]
    assert row["artifact_precision"] == "int8" and row["precision"] == "int8"
    assert row["top1_agreement"] == 1.0 and row["cosine_min"] >= 0.995


@needs_armv8
def test_bench_and_eval_on_the_arm_kernels(sample_lite_arm8, sample):
    r = run_cli("bench", sample_lite_arm8, "--runtime", "lite-arm", "--batch-sizes", "1",
                "--repeat", "2", "--warmup", "1", "--json", timeout=900)
    assert r.code == 0, r.stderr
    [row] = json.loads(r.stdout)["results"]
    assert row["runtime"] == "lite-arm" and "not phone latency" in row["detail"]
    assert row["p50_ms"] > 0
    r = run_cli("eval", sample_lite_arm8, "--runtime", "lite-arm", "--data",
                ROOT / sample["test_dir"], "--limit", "40", "--json", timeout=900)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)[0]["top1"] >= 0.95


@needs_armv8
def test_bad_nb_files_are_one_line(sample_lite_arm8, tmp_path, sample):
    img = sorted((ROOT / sample["test_dir"] / "1").glob("*.png"))[0]
    x86 = tmp_path / "x86"  # an x86 .nb where the manifest says arm8
    shutil.copytree(sample_lite_arm8, x86)
    shutil.copyfile(x86 / "model.x86.nb", x86 / "model.nb")
    assert_one_line_error(run_cli("predict", x86, img, "--runtime", "lite-arm", "--no-verify",
                                  timeout=600), "without an arm8 kernel")
    cut = tmp_path / "cut"
    shutil.copytree(sample_lite_arm8, cut)
    data = (cut / "model.nb").read_bytes()
    (cut / "model.nb").write_bytes(data[: len(data) // 3])
    assert_one_line_error(run_cli("predict", cut, img, "--runtime", "lite-arm", "--no-verify",
                                  timeout=600), "model.nb")


def test_an_arm_nb_given_to_the_x86_runner_is_one_line(sample_lite_arm8, tmp_path, sample):
    img = sorted((ROOT / sample["test_dir"] / "1").glob("*.png"))[0]
    swapped = tmp_path / "swapped"  # the arm8 .nb where the x86 twin should be
    shutil.copytree(sample_lite_arm8, swapped)
    shutil.copyfile(swapped / "model.nb", swapped / "model.x86.nb")
    assert_one_line_error(run_cli("predict", swapped, img, "--runtime", "lite", "--no-verify",
                                  timeout=600), "model.x86.nb is not an x86 .nb")


def test_a_missing_emulator_is_one_line(sample_lite_arm8, sample, monkeypatch):
    if arm.native(arm.ABIS["armv8"]):
        pytest.skip("an aarch64 host runs the ARM kernels without an emulator")
    if not arm.status("armv8").ready:
        pytest.skip("ARM kernels (armv8) not built: 'make arm-check' builds them")
    which = arm.shutil.which
    monkeypatch.setattr(arm.shutil, "which",
                        lambda cmd, *a, **k: None if cmd.startswith("qemu") else which(cmd, *a, **k))
    img = sorted((ROOT / sample["test_dir"] / "1").glob("*.png"))[0]
    r = invoke("predict", sample_lite_arm8, img, "--runtime", "lite-arm", "--no-verify")
    assert_one_line_error(r, "qemu-aarch64-static not found", "qemu-user-static")


@needs_armv7
def test_armv7_kernels(sample_export, tmp_path, sample):
    out = tmp_path / "armv7"
    assert run_cli("convert", sample_export, "--to", "lite", "--arch", "armv7", "--out", out).code == 0
    r = run_cli("parity", sample_export, out, "--runtime", "lite-arm", "--images",
                ROOT / sample["test_dir"], "--batch-sizes", "8", "--json", timeout=1800)
    assert r.code == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)["results"][0]
    assert row["detail"].startswith("armv7 ARM kernels") and row["cosine_min"] >= 0.99999
