"""Hostile and careless inputs: artifacts are verified against their manifest, --force never
destroys an input, and each mistake is one line with exit 1, nothing written or deleted."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.artifact import sha256, verify_artifact
from vitdeploy.errors import ArtifactError


@pytest.fixture()
def export_copy(sample_export, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(sample_export, d)
    return d


def _image(sample):
    return sorted((ROOT / sample["test_dir"] / "4").glob("*.png"))[0]


def test_export_force_never_deletes_the_checkpoint(tmp_path, sample):
    d = tmp_path / "work"
    d.mkdir()
    ckpt = d / "w.pdparams"
    shutil.copy(ROOT / sample["weights"], ckpt)
    labels = d / "labels.txt"
    shutil.copy(ROOT / sample["labels"], labels)
    for out in (d, tmp_path):
        r = run_cli("export", sample["model"], "--weights", ckpt, "--out", out, "--force")
        assert_one_line_error(r, "holds the input", "choose another --out")
    r = run_cli("export", sample["model"], "--weights", ROOT / sample["weights"], "--labels", labels,
                "--out", d, "--force")
    assert_one_line_error(r, "holds the input")
    assert sha256(ckpt) == sha256(ROOT / sample["weights"]) and labels.is_file()


def test_convert_force_never_deletes_its_source(export_copy, tmp_path):
    before = {p.name: sha256(p) for p in export_copy.iterdir()}
    for out in (export_copy, tmp_path):
        r = run_cli("convert", export_copy, "--to", "onnx", "--out", out, "--force")
        assert_one_line_error(r, "holds the input", "choose another --out")
    assert {p.name: sha256(p) for p in export_copy.iterdir()} == before


def test_corrupted_file_is_refused(export_copy, sample):
    params = export_copy / "inference.pdiparams"
    data = bytearray(params.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the model still loads and runs
    params.write_bytes(bytes(data))
    r = run_cli("predict", export_copy, _image(sample))
    assert_one_line_error(r, "inference.pdiparams does not match its sha256", "--no-verify")
    assert run_cli("predict", export_copy, _image(sample), "--no-verify").code == 0
    for cmd in (("eval", export_copy, "--data", ROOT / sample["test_dir"]),
                ("parity", export_copy, export_copy, "--num-random", "1"),
                ("convert", export_copy, "--to", "onnx", "--out", export_copy.parent / "o")):
        assert_one_line_error(run_cli(*cmd), "does not match its sha256")
    assert not (export_copy.parent / "o").exists()


def test_edited_manifest_is_refused(export_copy, sample):
    manifest = json.loads((export_copy / "manifest.json").read_text())
    (export_copy / "inference.pdiparams").write_bytes(b"\0" * 64)
    manifest["files"]["inference.pdiparams"] = sha256(export_copy / "inference.pdiparams")
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run_cli("predict", export_copy, _image(sample)),
                          "manifest.json was edited", "--no-verify")
    del manifest["manifest_sha256"]
    (export_copy / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run_cli("predict", export_copy, _image(sample)), "has no digest")


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: (d / "labels.txt").unlink(), "labels.txt (listed in manifest.json) is missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "is not valid JSON"),
    (lambda d: (d / "manifest.json").write_text("[1, 2]"), "no 'files' table"),
])
def test_incomplete_or_broken_manifest(export_copy, sample, mutate, needle):
    mutate(export_copy)
    with pytest.raises(ArtifactError, match="no-verify"):
        verify_artifact(export_copy)
    assert_one_line_error(run_cli("predict", export_copy, _image(sample)), needle)


def test_manifest_cannot_point_outside(export_copy, tmp_path):
    from vitdeploy.artifact import write_manifest

    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    manifest = json.loads((export_copy / "manifest.json").read_text())
    manifest.pop("manifest_sha256")
    files = manifest.pop("files")
    write_manifest(export_copy, manifest)  # a valid digest, then a hostile entry with a new one
    m = json.loads((export_copy / "manifest.json").read_text())
    m["files"] = {**files, "../secret.txt": sha256(secret)}
    m.pop("manifest_sha256")
    from vitdeploy.artifact import manifest_digest

    m["manifest_sha256"] = manifest_digest(m)
    (export_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="outside"):
        verify_artifact(export_copy)


def test_truncated_params_without_verify_is_one_line(export_copy, sample):
    params = export_copy / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[:1000])
    r = run_cli("predict", export_copy, _image(sample), "--no-verify")
    assert_one_line_error(r, "cannot load")
    assert "internal error" not in r.stderr


def test_verification_is_fast_and_deterministic(sample_export):
    assert verify_artifact(sample_export) == verify_artifact(sample_export)
