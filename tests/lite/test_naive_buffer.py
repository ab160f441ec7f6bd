"""`vitdeploy inspect` and the .nb reader on real opt output."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error, run_cli

from vitdeploy.errors import ArtifactError
from vitdeploy.lite.naive_buffer import read_nb


def test_arm8_file_fully_placed(sample_lite_arm8):
    info = read_nb(sample_lite_arm8 / "model.nb")
    assert info.opt_version.startswith("v2.13")
    assert info.unplaced("arm8") == []
    assert {o.target for o in info.ops} <= {"kARM", "kHost"}
    assert info.unplaced("x86")  # an ARM file is not an x86 file
    assert {"gelu", "layer_norm"} <= set(info.needs_extra())
    assert info.weight_precision() == "fp32"
    twin = read_nb(sample_lite_arm8 / "model.x86.nb")
    assert twin.unplaced("x86") == []


def test_inspect_cli_json(sample_lite_arm8):
    r = run_cli("inspect", sample_lite_arm8 / "model.nb", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["all_placed"] is True and data["opt_version"].startswith("v2.13")
    assert {"type", "target", "precision", "count"} == set(data["ops"][0])
    assert sum(op["count"] for op in data["ops"]) > 50
    assert "layer_norm" in data["needs_extra"]
    r = run_cli("inspect", sample_lite_arm8 / "model.x86.nb", "--arch", "arm8", "--json")
    assert json.loads(r.stdout)["all_placed"] is False


@pytest.mark.parametrize("content", [b"", b"\x02\x00v2.13-rc" + b"\x00" * 100, b"not a model" * 50])
def test_not_a_nb(tmp_path, content):
    f = tmp_path / "x.nb"
    f.write_bytes(content)
    with pytest.raises(ArtifactError, match="not a Paddle Lite naive-buffer"):
        read_nb(f)
    assert_one_line_error(run_cli("inspect", f), "not a Paddle Lite naive-buffer")


def test_truncated_nb(tmp_path, sample_lite_arm8):
    f = tmp_path / "t.nb"
    f.write_bytes((sample_lite_arm8 / "model.nb").read_bytes()[:5000])
    assert_one_line_error(run_cli("inspect", f), "not a Paddle Lite naive-buffer")
