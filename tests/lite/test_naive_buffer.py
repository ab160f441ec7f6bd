"""`vitdeploy inspect` and the .nb reader on real opt output."""

from __future__ import annotations

import json
import struct
import time

import pytest
from conftest import assert_one_line_error, run_cli

from vitdeploy.errors import ArtifactError
from vitdeploy.lite.naive_buffer import HEADER, KERNEL_ATTR, NbInfo, canonicalize_nb, read_nb


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



# Crafted files: a tiny forward FlatBuffers writer. A table is {field index: value} (int -> 4-byte
# scalar slot, str -> string, list -> vector of offsets, tuple -> vector of floats); an object that
# appears twice is written once and referenced twice, which is how the amplification files are made.
def _flatbuffer(root: dict) -> tuple[bytearray, dict[int, int]]:
    buf, placed = bytearray(4), {}  # placed: id(object) -> its position, for patching

    def pad() -> None:
        buf.extend(bytes(-len(buf) % 4))

    def ref(slot: int, obj) -> None:  # uoffsets are unsigned: a target goes after its referrer
        if placed.get(id(obj), -1) < slot:
            placed[id(obj)] = place(obj)
        struct.pack_into("<I", buf, slot, placed[id(obj)] - slot)

    def place(obj) -> int:
        pad()
        pos = len(buf)
        if isinstance(obj, str):
            buf.extend(struct.pack("<I", len(obj)) + obj.encode() + b"\0")
        elif isinstance(obj, tuple):
            buf.extend(struct.pack(f"<I{len(obj)}f", len(obj), *obj))
        elif isinstance(obj, list):
            buf.extend(struct.pack("<I", len(obj)) + bytes(4 * len(obj)))
            for i, item in enumerate(obj):
                ref(pos + 4 + 4 * i, item)
        else:  # vtable, then the table: soffset + one 4-byte slot per field
            n = max(obj) + 1
            buf.extend(struct.pack(f"<HH{n}H", 4 + 2 * n, 4 + 4 * n,
                                   *(4 + 4 * i if i in obj else 0 for i in range(n))))
            pad()
            vt, pos = pos, len(buf)
            buf.extend(struct.pack("<i", pos - vt) + bytes(4 * n))
            for i, v in obj.items():
                if isinstance(v, int):
                    struct.pack_into("<i", buf, pos + 4 + 4 * i, v)
                else:
                    ref(pos + 4 + 4 * i, v)
        return pos

    ref(0, root)
    return buf, placed


def _attr(name: str, value: str) -> dict:
    return {0: name, 4: value}


def _program(ops: list) -> dict:
    weight = {1: {2: {0: {0: 5}}}, 2: True}  # persistable, LoDTensor of fp32 (VarType 5)
    return {0: [{2: [weight, weight], 3: ops}]}


def _write(tmp_path, topo: bytes, name: str = "crafted.nb"):
    f = tmp_path / name
    f.write_bytes(HEADER.pack(2, b"v2.13-rc", len(topo)) + bytes(topo) + b"params")
    return f


def _valid_ops() -> list:
    feed = {0: "feed", 3: [_attr(KERNEL_ATTR, "feed/def/1/4/2")]}
    gelu = {0: "gelu", 1: [{0: "Y", 1: ["w"]}],
            3: [_attr(KERNEL_ATTR, "gelu/def/4/1/1"), {0: "quantize_weight_bits", 2: 8},
                {0: "w_quant_scale", 6: (0.5, 0.25)}]}
    return [feed, gelu]


def test_crafted_valid_file_parses(tmp_path):
    """Proves the writer above is right, so the attacks below fail for the reasons they claim."""
    info = read_nb(_write(tmp_path, _flatbuffer(_program(_valid_ops()))[0]))
    assert (info.meta_version, info.opt_version) == (2, "v2.13-rc")
    assert [(o.type, o.target, o.precision, o.layout) for o in info.ops] == [
        ("feed", "kHost", "kAny", "kAny"), ("gelu", "kARM", "kFloat", "kNCHW")]
    assert info.weight_types == {"fp32": 2} and info.quant_bits == {8}
    assert info.quant_scales == {"w": ("Y", [0.5, 0.25])}
    assert info.weight_precision() == "int8" and info.needs_extra() == ["gelu"]


def test_crafted_amplification_rejected_fast(tmp_path):
    """50k ops vector entries all point at one op with 3000 attrs: 150M attr visits if unbounded."""
    op = {0: "gelu", 3: [_attr(KERNEL_ATTR, "gelu/def/4/1/1")] * 3000}
    f = _write(tmp_path, _flatbuffer(_program([op] * 50_000))[0])
    assert f.stat().st_size < 250_000
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match="not a Paddle Lite naive-buffer.*repeat"):
        read_nb(f)
    assert time.perf_counter() - start < 20  # a hang guard (~0.05 s here; the old reader ran for hours)
    assert_one_line_error(run_cli("inspect", f), "not a Paddle Lite naive-buffer")


def test_crafted_shared_strings_rejected_fast(tmp_path):
    """Thousands of inputs sharing one long argument list: bounded by bytes covered, not tables."""
    var = {0: "X", 1: ["a" * 1000] * 2000}
    f = _write(tmp_path, _flatbuffer(_program([{0: "relu", 1: [var] * 5000}]))[0])
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match="repeat"):
        read_nb(f)
    assert time.perf_counter() - start < 20  # a hang guard (~0.05 s here; the old reader ran for hours)


_CORRUPTIONS = {  # name -> reason read_nb must give
    "vector length 2**31": "vector length out of bounds",
    "string length 2**31": "string length out of bounds",
    "entry offset past the end": "table offset out of bounds",
    "misaligned entry offset": "table offset misaligned",
    "vtable before the buffer": "vtable offset out of bounds",
    "vtable after the buffer": "vtable offset out of bounds",
    "odd vtable length": "bad vtable",
    "root past the end": "table offset out of bounds",
}


def _corrupt(what: str) -> bytearray:
    """A valid crafted topology with one word overwritten."""
    ops = _valid_ops()
    topo, placed = _flatbuffer(_program(ops))
    feed, table_vec = placed[id(ops[0])], placed[id(ops)]
    at, value = {"vector length 2**31": (table_vec, 2**31),
                 "string length 2**31": (placed[id(ops[0][0])], 2**31),
                 "entry offset past the end": (table_vec + 4, 0x7FFF_0000),
                 "misaligned entry offset": (table_vec + 4, feed - table_vec - 4 + 2),
                 "vtable before the buffer": (feed, feed + 400),
                 "vtable after the buffer": (feed, -len(topo)),
                 "odd vtable length": (feed - struct.unpack_from("<i", topo, feed)[0], 7 | 20 << 16),
                 "root past the end": (0, len(topo))}[what]
    struct.pack_into("<i" if value < 0 else "<I", topo, at, value)
    return topo


@pytest.mark.parametrize("what", _CORRUPTIONS)
def test_crafted_bad_offsets(tmp_path, what):
    f = _write(tmp_path, _corrupt(what))
    start = time.perf_counter()
    with pytest.raises(ArtifactError) as e:
        read_nb(f)
    assert str(e.value) == f"{f} is not a Paddle Lite naive-buffer model (.nb from opt): {_CORRUPTIONS[what]}"
    assert time.perf_counter() - start < 20  # a hang guard, not a speed target


def test_crafted_bad_offset_cli(tmp_path):
    f = _write(tmp_path, _corrupt("vector length 2**31"))
    assert_one_line_error(run_cli("inspect", f), "not a Paddle Lite naive-buffer", "out of bounds")


def test_converted_nb_header_is_canonical(sample_lite_arm8, tmp_path):
    """opt leaves leftover memory after the NUL of its version field: conversion zeroes it, so
    the same model gives the same bytes; canonicalize_nb does it to any .nb, idempotently."""
    for name in ("model.nb", "model.x86.nb"):
        raw = (sample_lite_arm8 / name).read_bytes()
        version = raw[2:18]
        assert version.split(b"\0", 1)[1].strip(b"\0") == b"", (name, version)
    junk = tmp_path / "junk.nb"
    raw = bytearray((sample_lite_arm8 / "model.nb").read_bytes())
    end = raw.index(0, 2)
    raw[end + 1:18] = b"\x7f" * (18 - end - 1)
    junk.write_bytes(raw)
    canonicalize_nb(junk)
    assert junk.read_bytes() == (sample_lite_arm8 / "model.nb").read_bytes()
    canonicalize_nb(junk)
    assert read_nb(junk).opt_version == read_nb(sample_lite_arm8 / "model.nb").opt_version


def test_weights_lite_does_not_dequantize_are_named():
    """Lite 2.13's loader dequantizes conv / fc / mul / lookup_table weights only: a quantized
    matmul_v2 weight would run as uninitialised floats on the phone (convert refuses it)."""
    info = NbInfo("m.nb", 2, "v2.13-rc", [], quant_ops={"w0": "fc", "w1": "matmul_v2"})
    assert info.undequantized() == ["matmul_v2"]
    assert NbInfo("m.nb", 2, "v2.13-rc", [], quant_ops={"w0": "fc"}).undequantized() == []
