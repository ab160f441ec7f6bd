"""`vitdeploy reference` and reference files in `vitdeploy parity`: the file round-trips without
pickles or absolute paths, is reproducible, stands in for the Paddle export (pass, exit 0; a
different reference fails, exit 2), and anything wrong with it is one line, exit 1."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, invoke, run_cli

from vitdeploy.check.parity import run_parity
from vitdeploy.check.reference import (
    FORMAT,
    Reference,
    compute_reference,
    load_reference,
    save_reference,
)
from vitdeploy.errors import OutputExistsError, ReferenceFileError
from vitdeploy.models.config import PreprocessConfig

MODEL = "DeiT_digits_patch8_32"


@pytest.fixture(scope="module")
def ref_file(sample_export, sample, tmp_path_factory):
    """A reference computed by the CLI on the first 24 held-out images (absolute --images)."""
    path = tmp_path_factory.mktemp("ref") / "digits.npz"
    r = run_cli("reference", sample_export, "--images", ROOT / sample["test_dir"], "--limit", "24",
                "--out", path, "--json")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["count"] == 24 and summary["file"] == str(path)
    return path


def _synthetic(n: int = 4, size: int = 32, classes: int = 10, model: str | None = MODEL,
               crop: int | None = None) -> Reference:
    rng = np.random.default_rng(0)
    pre = PreprocessConfig(resize_short=size, crop_size=crop or size, backend="pil",
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = {"created_by": "test", "model": model, "runtime": "paddle", "artifact_precision": "fp32",
            "compute_precision": "fp32", "preprocess": pre.to_dict()}
    return Reference(rng.standard_normal((n, 3, size, size)).astype(np.float32),
                     rng.standard_normal((n, classes)).astype(np.float32),
                     [f"d/{i}.png" for i in range(n)], ["ab" * 32] * n, meta,
                     [str(c) for c in range(classes)])


def _raw(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(src, dst, **changes) -> None:
    """A copy of the reference file ``src`` with some arrays replaced (None: removed)."""
    arrays = {**_raw(src), **changes}
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})


# -- the file ---------------------------------------------------------------------------------


def test_round_trip_without_pickles_or_absolute_paths(ref_file, sample_export, sample):
    ref = load_reference(ref_file)
    assert ref.inputs.shape == (24, 3, 32, 32) and ref.inputs.dtype == np.float32
    assert ref.outputs.shape == (24, 10) and ref.outputs.dtype == np.float32
    assert ref.images[0].startswith("test/0/") and len(ref.image_sha256[0]) == 64
    assert ref.labels == [str(c) for c in range(10)]
    m = ref.meta
    assert m["created_by"] == "vitdeploy reference" and m["model"] == MODEL
    assert (m["runtime"], m["artifact_precision"], m["compute_precision"]) == ("paddle", "fp32", "fp32")
    assert m["artifact"]["manifest_sha256"] and m["artifact"]["verified"] is True
    assert {"vitdeploy", "paddlepaddle", "numpy"} <= m["versions"].keys() and m["machine"]["cpu"]
    assert m["preprocess"]["crop_size"] == 32 and m["images"]["count"] == 24
    assert len(m["topk"]["labels"]) == 24
    raw = _raw(ref_file)  # plain arrays: loads with allow_pickle=False
    assert str(raw["format"]) == FORMAT and int(raw["version"]) == 1
    assert all(a.dtype.kind != "O" for a in raw.values())
    text = " ".join(str(a.tolist()) for a in raw.values() if a.dtype.kind == "U")
    for where in (ROOT, sample_export, ref_file.parent):
        assert str(where) not in text
    # save -> load gives the same reference back
    again = save_reference(ref, ref_file.parent / "again.npz")
    back = load_reference(again)
    for name in ("inputs", "outputs"):
        assert np.array_equal(getattr(back, name), getattr(ref, name))
    assert (back.images, back.image_sha256, back.meta, back.labels) == (
        ref.images, ref.image_sha256, ref.meta, ref.labels)
    assert again.read_bytes() == ref_file.read_bytes()  # byte for byte


def test_deterministic(sample_export, sample, tmp_path):
    a, b = (compute_reference(sample_export, ROOT / sample["test_dir"] / "5", limit=4)
            for _ in range(2))
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.outputs, b.outputs)
    assert a.images == b.images == [f"5/{n}" for n in sorted(
        p.name for p in (ROOT / sample["test_dir"] / "5").iterdir())[:4]]
    pa, pb = save_reference(a, tmp_path / "a.npz"), save_reference(b, tmp_path / "b.npz")
    assert pa.read_bytes() == pb.read_bytes()
    assert (pa.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temp files left


def test_topk():
    ref = _synthetic()
    ref.outputs[0] = np.arange(10, dtype=np.float32)
    ids, scores = ref.topk(3)
    assert ids.shape == (4, 3) and ids[0].tolist() == [9, 8, 7] and scores[0].tolist() == [9, 8, 7]


def test_save_refusals(tmp_path):
    ref, out = _synthetic(), tmp_path / "r.npz"
    save_reference(ref, out)
    with pytest.raises(OutputExistsError, match="pass --force"):
        save_reference(ref, out)
    save_reference(ref, out, force=True)
    with pytest.raises(OutputExistsError, match="inside the artifact"):
        save_reference(ref, tmp_path / "art" / "r.npz", protect=[tmp_path / "art"])
    ref.images[0] = "/home/me/0.png"
    with pytest.raises(ReferenceFileError, match="relative"):
        save_reference(ref, tmp_path / "abs.npz")
    assert not (tmp_path / "abs.npz").exists()


# -- parity against a reference file ------------------------------------------------------------


def test_parity_with_reference_onnx(ref_file, sample_onnx):
    r = run_cli("parity", ref_file, sample_onnx, "--json")
    assert r.code == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] is True
    assert report["inputs"] == {"kind": "reference", "count": 24, "skipped": []}
    ref = report["reference"]
    assert ref["kind"] == "file" and ref["file"] == str(ref_file)
    assert (ref["runtime"], ref["precision"], ref["model"]) == ("paddle", "fp32", MODEL)
    assert ref["machine"] and "paddlepaddle" in ref["versions"]
    row = report["results"][0]
    assert row["runtime"] == "onnxruntime" and row["top1_agreement"] == 1.0
    # the table itself: tests/test_rendering.py renders it at fixed widths; here it just runs
    table = run_cli("parity", ref_file, sample_onnx, "--batch-sizes", "1,2")
    assert table.code == 0 and table.stderr == ""


def test_parity_with_reference_in_process(ref_file, sample_export):
    report = run_parity(ref_file, [sample_export], batch_sizes=(1, 3))
    assert report.passed and report.results[0].max_abs <= 1e-5
    assert run_parity(load_reference(ref_file), [sample_export], batch_sizes=(2,)).passed


def test_perturbed_reference_fails_with_exit_2(ref_file, sample_export, tmp_path):
    raw = _raw(ref_file)
    noisy = raw["outputs"] + np.random.default_rng(0).normal(0, 2.0, raw["outputs"].shape)
    _rewrite(ref_file, tmp_path / "noisy.npz", outputs=noisy.astype(np.float32))
    r = run_cli("parity", tmp_path / "noisy.npz", sample_export, "--json")
    assert r.code == 2, r.stderr
    assert any("cosine" in f for f in json.loads(r.stdout)["results"][0]["failures"])


def test_reference_from_a_perturbed_model_fails(sample_onnx, sample, tmp_path):
    import onnx
    from onnx import numpy_helper

    bad = tmp_path / "perturbed"
    shutil.copytree(sample_onnx, bad)
    model = onnx.load(str(bad / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(init)
    noisy = arr + np.random.default_rng(0).normal(0, 0.5 * arr.std(), arr.shape).astype(arr.dtype)
    init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    onnx.save(model, str(bad / "model.onnx"))
    out = tmp_path / "perturbed.npz"
    r = run_cli("reference", bad, "--images", ROOT / sample["test_dir"], "--limit", "12",
                "--out", out, "--no-verify")  # edited on purpose
    assert r.code == 0, r.stderr
    assert load_reference(out).meta["runtime"] == "onnxruntime"
    assert run_cli("parity", out, sample_onnx).code == 2


# -- one line, exit 1 ---------------------------------------------------------------------------


def _bad_files(ref_file, d) -> dict:
    raw = _raw(ref_file)
    made = {}

    def rewrite(name, **changes):
        _rewrite(ref_file, d / f"{name}.npz", **changes)
        made[name] = d / f"{name}.npz"

    (d / "truncated.npz").write_bytes(ref_file.read_bytes()[:5000])
    (d / "pickle.npz").write_bytes(pickle.dumps({"inputs": [1, 2]}))
    np.savez(d / "object.npz", **{**raw, "meta": np.array([{"a": 1}], dtype=object)})
    np.savez(d / "foreign.npz", weights=np.zeros(3))
    made |= {n: d / f"{n}.npz" for n in ("truncated", "pickle", "object", "foreign")}
    rewrite("shape", inputs=raw["inputs"][:, 0])
    rewrite("rows", outputs=raw["outputs"][:5])
    rewrite("nan", outputs=np.where(np.arange(10) == 3, np.nan, raw["outputs"]).astype(np.float32))
    rewrite("dtype", outputs=raw["outputs"].astype(np.float64))
    rewrite("newer", version=np.array(7))
    rewrite("no_meta", meta=None)
    rewrite("abs_path", images=np.array(["/data/x.png"] * len(raw["images"])))
    meta = json.loads(str(raw["meta"][0]))
    rewrite("meta_type", meta=np.array([json.dumps({**meta, "runtime": 3})]))
    return made


@pytest.mark.parametrize("name,needles", [
    ("truncated", ("not a .npz archive",)), ("pickle", ("not a .npz archive",)),
    ("object", ("pickled (object) array", "never loaded")),
    ("foreign", ("not a vitdeploy reference file",)),
    ("shape", ("inputs must be float32 [N,3,H,W]",)), ("rows", ("outputs must be float32 [24",)),
    ("nan", ("outputs hold 24 NaN/inf",)), ("dtype", ("float64",)),
    ("newer", ("format version 7 is newer",)), ("no_meta", ("missing meta",)),
    ("abs_path", ("must be relative",)), ("meta_type", ("meta.runtime",)),
])
def test_bad_reference_files(ref_file, tmp_path, name, needles):
    path = _bad_files(ref_file, tmp_path)[name]
    with pytest.raises(ReferenceFileError):
        load_reference(path)
    r = invoke("parity", path, tmp_path / "no-artifact")  # refused before any artifact is read
    assert_one_line_error(r, str(path), *needles)


def test_reference_that_does_not_fit_the_artifact(sample_export, tmp_path):
    save_reference(_synthetic(size=48), tmp_path / "big.npz")
    assert_one_line_error(invoke("parity", tmp_path / "big.npz", sample_export),
                          "holds 48x48 inputs", f"{sample_export} takes 32x32")
    save_reference(_synthetic(model="ViT_other"), tmp_path / "other.npz")
    assert_one_line_error(invoke("parity", tmp_path / "other.npz", sample_export),
                          "is of model ViT_other", f"{sample_export} is {MODEL}")
    save_reference(_synthetic(classes=7), tmp_path / "seven.npz")
    assert_one_line_error(invoke("parity", tmp_path / "seven.npz", sample_export),
                          "has 7 classes", "has 10")
    assert_one_line_error(invoke("parity", tmp_path / "missing.npz", sample_export),
                          "reference file not found")


def test_images_with_a_reference_is_refused(ref_file, sample, tmp_path):
    r = invoke("parity", ref_file, tmp_path / "no-artifact", "--images", ROOT / sample["test_dir"])
    assert_one_line_error(r, "a reference brings its own inputs")


def test_reference_cli_refusals(ref_file, sample_export, sample, tmp_path):
    images = ROOT / sample["test_dir"] / "0"
    before = ref_file.read_bytes()
    assert_one_line_error(invoke("reference", sample_export, "--images", images, "--out", ref_file),
                          str(ref_file), "exists", "--force")
    assert ref_file.read_bytes() == before
    assert_one_line_error(invoke("reference", sample_export, "--images", images,
                                 "--out", sample_export / "r.npz"), "inside the artifact")
    assert not (sample_export / "r.npz").exists()
    assert_one_line_error(invoke("reference", sample_export, "--images", images,
                                 "--out", tmp_path / "r.npy"), "is a .npz file")
    assert_one_line_error(invoke("reference", sample_export, "--images", images, "--limit", "0",
                                 "--out", tmp_path / "r.npz"), "--limit")
    assert_one_line_error(invoke("reference", sample_export, "--images", tmp_path / "none",
                                 "--out", tmp_path / "r.npz"), "image not found")
    assert_one_line_error(invoke("reference", sample_export, "--out", tmp_path / "r.npz"),
                          "--images")
    assert_one_line_error(invoke("reference", sample_export, "--images", images, "--precision",
                                 "fp16", "--out", tmp_path / "r.npz"), "precision 'fp16'")
    assert not (tmp_path / "r.npz").exists()


def test_reference_cli_wiring(monkeypatch, tmp_path):
    import vitdeploy.check.reference as reference

    seen = {}

    def fake(artifact, images, **kw):
        seen.update(kw, artifact=artifact, images=images)
        return _synthetic()

    monkeypatch.setattr(reference, "compute_reference", fake)
    out = tmp_path / "r.npz"
    args = ("reference", tmp_path / "art", "--images", tmp_path / "a", "--images", tmp_path / "b",
            "--out", out, "-r", "openvino", "--precision", "bf16", "--limit", "5",
            "--model", MODEL, "--no-verify", "--bad-images", "stop", "--max-image-pixels", "99")
    r = invoke(*args, "--json")
    assert r.code == 0, r.stderr
    assert seen["images"] == [tmp_path / "a", tmp_path / "b"] and seen["artifact"] == tmp_path / "art"
    assert {k: seen[k] for k in ("runtime", "precision", "limit", "model", "verify", "on_bad_image",
                                 "max_pixels")} == {
        "runtime": "openvino", "precision": "bf16", "limit": 5, "model": MODEL, "verify": False,
        "on_bad_image": "stop", "max_pixels": 99}
    summary = json.loads(r.stdout)
    assert summary["file"] == str(out) and summary["bytes"] == out.stat().st_size
    assert summary["count"] == 4 and summary["model"] == MODEL
    assert_one_line_error(invoke(*args), "exists", "--force")
    table = invoke(*args, "--force")  # the human form runs too (its content: the JSON above)
    assert table.code == 0 and out.is_file()
    with zipfile.ZipFile(out) as z:  # every member is a plain .npy
        assert all(n.endswith(".npy") for n in z.namelist())
