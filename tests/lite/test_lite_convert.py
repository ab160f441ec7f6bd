"""`vitdeploy convert --to lite` through the managed toolchain, with Lite x86 parity."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.lite import env as lite_env
from vitdeploy.lite.naive_buffer import read_nb
from vitdeploy.models.loader import save_random_checkpoint

pytestmark = pytest.mark.slow  # real conversions: make test, not make check


def test_sample_arm8_artifact_and_parity(sample_export, sample_lite_arm8, sample):
    names = sorted(p.name for p in sample_lite_arm8.iterdir())
    assert names == ["inference.yml", "labels.txt", "manifest.json", "model.nb", "model.x86.nb"]
    manifest = json.loads((sample_lite_arm8 / "manifest.json").read_text())
    assert manifest["lite"] == {"arch": "arm8", "x86_twin": "model.x86.nb", "x86_twin_weights": "fp32"}
    assert manifest["conversion"]["passes"]["flatten_xshape"] == 1
    r = run_cli("parity", sample_export, sample_lite_arm8, "--images", ROOT / sample["test_dir"],
                "--runtime", "lite", "--json")  # the x86 twin (the ARM kernels: test_lite_arm.py)
    assert r.code == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)["results"][0]
    assert row["runtime"] == "lite" and row["detail"] == "x86 twin of arm8"
    assert row["notes"] and "x86 kernels stand in for the arm8 ones" in row["notes"][0]
    assert row["top1_agreement"] == 1.0 and row["cosine_min"] >= 0.99999


def test_predict_on_lite(sample_lite_arm8, sample):
    img = sorted((ROOT / sample["test_dir"] / "5").glob("*.png"))[0]
    r = run_cli("predict", sample_lite_arm8, img, "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)[0]["top"][0]["label"] == "5"


@pytest.mark.parametrize("name", ["DeiT_tiny_patch16_224", "LeViT_128S"])
def test_seed_models_lite_x86_parity(name, tmp_path):
    variant = {"distillation": True} if name.startswith("LeViT") else {}
    ckpt = save_random_checkpoint(name, tmp_path / "w.pdparams", seed=5, **variant)
    assert run_cli("export", name, "--weights", ckpt, "--out", tmp_path / "pd").code == 0
    r = run_cli("convert", tmp_path / "pd", "--to", "lite", "--arch", "x86", "--out", tmp_path / "x86")
    assert r.code == 0, r.stderr
    r = run_cli("parity", tmp_path / "pd", tmp_path / "x86", "--batch-sizes", "1,2", "--num-random", "2",
                "--json")
    assert r.code == 0, r.stdout
    assert json.loads(r.stdout)["results"][0]["max_abs"] < 1e-3


@pytest.mark.parametrize("bits,min_cos", [("int8", 0.995), ("int16", 0.99999)])
def test_weight_only_quantization(sample_export, tmp_path, sample, bits, min_cos):
    out = tmp_path / bits
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--quantize", bits,
                "--out", out)
    assert r.code == 0, r.stderr
    info = json.loads(run_cli("inspect", out / "model.nb", "--json").stdout)
    assert info["weights_precision"] == bits and info["all_placed"]
    nb = read_nb(out / "model.nb")  # every quantized weight sits where Lite dequantizes it
    assert set(nb.quant_ops.values()) and nb.undequantized() == []
    if bits == "int8":
        fp32_size = (sample_export / "inference.pdiparams").stat().st_size
        assert (out / "model.nb").stat().st_size < 0.5 * fp32_size
    # Lite x86 gives NaN on quantized models: the twin is fp32 with the ARM file's rounded weights
    twin = json.loads(run_cli("inspect", out / "model.x86.nb", "--arch", "x86", "--json").stdout)
    assert twin["weights_precision"] == "fp32"
    r = run_cli("parity", sample_export, out, "--images", ROOT / sample["test_dir"], "--runtime",
                "lite", "--json")
    row = json.loads(r.stdout)["results"][0]
    assert r.code == 0 and row["precision"] == bits, row
    assert row["detail"] == f"x86 twin of arm8, {bits} weights emulated"
    assert min_cos <= row["cosine_min"] < 1.0 - 1e-9 and row["max_abs"] > 1e-5  # really rounded


def test_x86_quantized_is_refused(sample_export, tmp_path):
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "x86", "--quantize", "int16",
                "--out", tmp_path / "o")
    assert_one_line_error(r, "NaN", "--arch arm8")


def test_parity_flags_non_finite_outputs():
    import numpy as np

    from vitdeploy.check.parity import check, compare
    from vitdeploy.precision import PRESETS

    ref = np.ones((2, 4), np.float32)
    out = ref.copy()
    out[0, 1] = np.nan
    m = compare(ref, out)
    assert m["non_finite"] and m["cosine_min"] == -1.0
    assert check(m, 0.0, PRESETS["fp32"])


@pytest.mark.parametrize("args,needles", [
    (("--arch", "mips"), ("--arch 'mips'", "arm8, armv7, x86, opencl")),
    (("--quantize", "int4"), ("int4",)),
    (("--arch", "x86", "--fp16"), ("--fp16",)),
])
def test_bad_lite_options(sample_export, tmp_path, args, needles):
    r = run_cli("convert", sample_export, "--to", "lite", *args, "--out", tmp_path / "o")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o").exists()


def test_lite_options_need_lite_target(sample_export, tmp_path):
    assert_one_line_error(run_cli("convert", sample_export, "--to", "onnx", "--arch", "arm8",
                                  "--out", tmp_path / "o"), "--arch does not apply to --to onnx")


def test_checkpoint_must_match_the_export(tmp_path, sample):
    """The export records its checkpoint's path and sha256: a moved one needs --weights, and
    --weights must be that same checkpoint."""
    ckpt = tmp_path / "moved.pdparams"
    shutil.copy(ROOT / sample["weights"], ckpt)
    assert run_cli("export", sample["model"], "--weights", ckpt, "--out", tmp_path / "exp").code == 0
    ckpt.unlink()
    r = run_cli("convert", tmp_path / "exp", "--to", "lite", "--out", tmp_path / "o")
    assert_one_line_error(r, "--weights", "which is gone")
    other = save_random_checkpoint(sample["model"], tmp_path / "other.pdparams", num_classes=10)
    r = run_cli("convert", tmp_path / "exp", "--to", "lite", "--weights", other, "--out", tmp_path / "o")
    assert_one_line_error(r, "sha256 differs")
    r = run_cli("convert", tmp_path / "exp", "--to", "lite", "--weights", ROOT / sample["weights"],
                "--out", tmp_path / "o")
    assert r.code == 0, r.stderr


def test_toolchain_missing_is_one_clear_line(sample_export, tmp_path, monkeypatch):
    monkeypatch.setenv("VITDEPLOY_LITE_ENV", str(tmp_path / "no-env"))
    r = run_cli("convert", sample_export, "--to", "lite", "--out", tmp_path / "o")
    assert_one_line_error(r, "not set up", "vitdeploy lite setup")


def test_python310_discovery_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("VITDEPLOY_LITE_PYTHON", sys.executable)  # a 3.11: refused
    with pytest.raises(lite_env.LiteToolchainError, match="not a working Python 3.10"):
        lite_env.find_python310()
    monkeypatch.delenv("VITDEPLOY_LITE_PYTHON")
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.10, no uv
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "nopyenv"))
    with pytest.raises(lite_env.LiteToolchainError, match="VITDEPLOY_LITE_PYTHON"):
        lite_env.find_python310()


def test_python310_found_via_env_or_pyenv():
    exe, how = lite_env.find_python310()
    assert how in ("VITDEPLOY_LITE_PYTHON", "PATH", "pyenv", "uv") and os.path.exists(exe)


def test_doctor(tmp_path):
    r = run_cli("doctor", "--json")
    assert r.code == 0
    data = json.loads(r.stdout)
    names = {c["name"]: c for c in data["components"]}
    assert names["lite toolchain"]["ok"] is True
    assert "paddlelite" in names["lite toolchain"]["version"]
    assert {"paddle", "onnxruntime", "openvino", "lite", "lite-arm"} == set(data["runtimes"])


def test_fp16_is_refused_when_opt_cannot_do_it(sample_export, tmp_path):
    """The PyPI opt has no ARMv8.2 fp16 kernels: say so instead of writing an fp32 model."""
    r = run_cli("convert", sample_export, "--to", "lite", "--arch", "arm8", "--fp16",
                "--out", tmp_path / "o")
    if r.code == 0:  # an opt built with fp16 support: the kernels must really be fp16
        info = json.loads(run_cli("inspect", tmp_path / "o" / "model.nb", "--json").stdout)
        assert any(op["precision"] == "kFP16" for op in info["ops"])
    else:
        assert_one_line_error(r, "--fp16", "fp16")
        assert not (tmp_path / "o").exists()


def test_preflight_report_parsing():
    from vitdeploy.lite.worker import _parse_support

    report = """OPs in the input model include:
                                        OP_name  kARM  kHost
                                         conv2d     Y
                                      expand_v2            Y
                                   my_custom_op
Paddle-Lite does not support this model!"""
    support = _parse_support(report)
    assert support["conv2d"] == ["kARM"] and support["expand_v2"] == ["kHost"]
    assert support["my_custom_op"] == []


def test_arm_artifact_without_twin_explains(sample_lite_arm8, tmp_path, sample):
    d = tmp_path / "arm_only"
    shutil.copytree(sample_lite_arm8, d)
    (d / "model.x86.nb").unlink()
    img = sorted((ROOT / sample["test_dir"] / "2").glob("*.png"))[0]
    assert_one_line_error(run_cli("predict", d, img), "model.x86.nb (listed in manifest.json) is missing")
    from vitdeploy.lite.arm import status

    if not status("armv8").ready:  # else the ARM kernels run it (tests/lite/test_lite_arm.py)
        assert_one_line_error(run_cli("predict", d, img, "--no-verify"), "without the x86 twin",
                              "vitdeploy inspect")
    assert_one_line_error(run_cli("predict", d, img, "--runtime", "lite", "--no-verify"),
                          "without the x86 twin")


def test_the_worker_takes_payloads_larger_than_an_argument():
    """A ViT's weight-only int8 scales (DeiT-tiny: ~20k floats) outgrow one argv string (128 KiB
    on Linux): the payload goes through stdin, so the worker answers (here: no such command)."""
    from vitdeploy.errors import VitdeployError

    with pytest.raises(VitdeployError, match="KeyError: 'no-such-command'"):
        lite_env.run_worker("no-such-command", {"scales": [0.123456789] * 50_000})


def _legacy_export(name: str, ckpt, dest):
    """A PaddleClas-style legacy export (inference.pdmodel from Paddle 2.6, no inference.yml)."""
    dest.mkdir()
    lite_env.run_worker("export", {"model": name, "weights": str(ckpt), "out": str(dest)})
    for extra in dest.glob("*.info"):
        extra.unlink()
    assert sorted(p.name for p in dest.iterdir()) == ["inference.pdiparams", "inference.pdmodel"]
    return dest


def test_legacy_pdmodel_source_converts_to_onnx(tmp_path):
    import numpy as np

    from vitdeploy.runtimes.onnxruntime import OnnxRuntime
    from vitdeploy.runtimes.paddle import PaddleRuntime

    ckpt = save_random_checkpoint("LeViT_128S", tmp_path / "w.pdparams", distillation=True)
    legacy = _legacy_export("LeViT_128S", ckpt, tmp_path / "legacy")
    r = run_cli("convert", legacy, "--to", "onnx", "--model", "LeViT_128S", "--out", tmp_path / "o")
    assert r.code == 0, r.stderr
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype("float32")
    with PaddleRuntime(legacy / "inference.pdmodel") as a, OnnxRuntime(tmp_path / "o" / "model.onnx") as b:
        assert np.abs(a.predict(x) - b.predict(x)).max() < 1e-4


def test_paddle2onnx_crash_is_one_line(sample, tmp_path):
    """paddle2onnx 2.1 segfaults on Paddle-2.x DeiT programs: the CLI survives and says what to
    do. Should a later paddle2onnx convert it, the ONNX must then really match."""
    legacy = _legacy_export(sample["model"], ROOT / sample["weights"], tmp_path / "legacy")
    r = run_cli("convert", legacy, "--to", "onnx", "--model", sample["model"], "--out", tmp_path / "o")
    if r.code != 0:
        assert_one_line_error(r, "paddle2onnx failed", "vitdeploy export")
        assert not (tmp_path / "o").exists()
        return
    import numpy as np

    from vitdeploy.runtimes.onnxruntime import OnnxRuntime
    from vitdeploy.runtimes.paddle import PaddleRuntime

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    with PaddleRuntime(legacy / "inference.pdmodel") as a, OnnxRuntime(tmp_path / "o" / "model.onnx") as b:
        assert np.abs(a.predict(x) - b.predict(x)).max() < 1e-4


def test_softmax_export_survives_lite(sample_lite_arm8, tmp_path, sample):
    """--softmax is part of the program the Lite worker re-exports, not only of inference.yml."""
    pd, lite = tmp_path / "pd", tmp_path / "lite"
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"], "--labels",
                ROOT / sample["labels"], "--out", pd, "--softmax")
    assert r.code == 0, r.stderr
    r = run_cli("convert", pd, "--to", "lite", "--arch", "arm8", "--out", lite)
    assert r.code == 0, r.stderr
    manifest = json.loads((lite / "manifest.json").read_text())
    plain = json.loads((sample_lite_arm8 / "manifest.json").read_text())
    assert manifest["softmax"] is True
    assert (manifest["conversion"]["legacy_ops"]["softmax"]
            == plain["conversion"]["legacy_ops"]["softmax"] + 1)
    r = run_cli("parity", pd, lite, "--images", ROOT / sample["test_dir"], "--json")
    assert r.code == 0, r.stdout + r.stderr
    for row in json.loads(r.stdout)["results"]:
        assert row["cosine_min"] >= 0.99999 and row["top1_agreement"] == 1.0, row
        assert row["max_abs"] < 1e-5, row  # probabilities against probabilities
    imgs = [sorted((ROOT / sample["test_dir"] / d).glob("*.png"))[0] for d in ("3", "5")]
    want, got = (json.loads(run_cli("predict", a, *imgs, "--json").stdout) for a in (pd, lite))
    for a, b in zip(want, got, strict=True):
        assert a["top"][0]["label"] == b["top"][0]["label"]
        assert abs(a["top"][0]["score"] - b["top"][0]["score"]) <= 1e-5, (a, b)


def test_lite_reexport_softmax_follows_source_manifest(monkeypatch, tmp_path, sample):
    """The worker's export is asked for softmax exactly when the source export recorded it; a
    bare PaddleClas directory (no manifest) gives logits."""
    from vitdeploy.convert import lite as lite_convert
    from vitdeploy.convert.source import Source

    sent = []

    def fake_worker(command, payload, timeout=None):
        sent.append((command, payload))
        raise RuntimeError("stop after export")

    monkeypatch.setattr(lite_env, "run_worker", fake_worker)
    monkeypatch.setattr(lite_env, "require", lambda: None)
    options = lite_convert.Options(weights=ROOT / sample["weights"])
    for manifest in ({"softmax": True}, {"softmax": False}, {}):
        src = Source(tmp_path, "paddle", tmp_path / "inference.pdmodel", manifest, sample["model"],
                     None, None)
        with pytest.raises(RuntimeError, match="stop after export"):
            lite_convert.convert(src, tmp_path / "o", options)
    assert [(c, p["softmax"]) for c, p in sent] == [("export", True), ("export", False),
                                                    ("export", False)]


def test_lite_worker_applies_threads(sample_lite_arm8, tmp_path):
    """Lite's x86 binding has no MobileConfig.set_threads and each new predictor resets MKL to
    one thread, so the worker sets the count before every run and replies with what MKL reads
    back (MKL caps it at the physical cores); one worker serves each (nb, threads) pair, and
    OMP_NUM_THREADS=1 in its environment does not cap it."""
    import subprocess

    import numpy as np

    from vitdeploy.runtimes.base import physical_cores
    from vitdeploy.runtimes.lite import LiteRuntime

    if physical_cores() < 2:
        pytest.skip("needs two cores to tell thread counts apart")
    nb = sample_lite_arm8 / "model.x86.nb"
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.Popen(lite_env.worker_command("serve"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env={**lite_env.worker_env(), "OMP_NUM_THREADS": "1"})

    def answer() -> dict:
        return next(json.loads(ln) for ln in proc.stdout if ln.startswith("{"))

    def ask(req: dict) -> dict:
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        return answer()

    try:
        assert answer() == {"ready": True}
        replies = [ask({"nb": str(nb), "input": str(tmp_path / "x.npy"),
                        "output": str(tmp_path / f"y{i}.npy"), "threads": n})
                   for i, n in enumerate((1, 2, 1))]
    finally:
        proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    assert [r.get("threads") for r in replies] == [1, 2, 1], replies
    ys = [np.load(tmp_path / f"y{i}.npy") for i in range(3)]
    for y in ys[1:]:
        np.testing.assert_allclose(y, ys[0], atol=1e-5)
    for n in (2, 1):  # and through the runtime, which sends its own count
        with LiteRuntime(nb, threads=n) as rt:
            rt.predict(x)
            assert rt.applied_threads == n


def test_legacy_pdmodel_converts_to_lite_directly(tmp_path):
    """A PaddleClas export from Paddle 2.x is what opt reads: no checkpoint needed; predict and
    parity accept the bare directory with --model."""
    ckpt = save_random_checkpoint("LeViT_128S", tmp_path / "w.pdparams", seed=2, distillation=True)
    legacy = _legacy_export("LeViT_128S", ckpt, tmp_path / "legacy")
    ckpt.unlink()
    r = run_cli("convert", legacy, "--to", "lite", "--arch", "x86", "--model", "LeViT_128S",
                "--out", tmp_path / "x86", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["details"]["from"] == "legacy program as given"
    r = run_cli("parity", legacy, tmp_path / "x86", "--model", "LeViT_128S", "--num-random", "2",
                "--batch-sizes", "1,2", "--json")
    assert r.code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["results"][0]["max_abs"] < 1e-3


def test_bare_paddle3_export_to_lite_names_the_checkpoint(sample_export, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("inference.json", "inference.pdiparams"):
        shutil.copy(sample_export / f, bare / f)
    r = run_cli("convert", bare, "--to", "lite", "--model", "DeiT_digits_patch8_32", "--out", tmp_path / "o")
    assert_one_line_error(r, "legacy .pdmodel", "Paddle 2.6", "--weights CKPT")
