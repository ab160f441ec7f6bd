"""Read Paddle Lite's naive-buffer ``.nb`` files without Paddle Lite.

Layout: uint16 meta_version, char[16] opt_version, uint64 topology size, then the topology as
a FlatBuffers ``paddle.lite.fbs.proto.ProgramDesc`` (lite/model_parser/flatbuffers/
framework.fbs), then the parameters. Each op carries ``__@kernel_type_attr@__`` =
``op/alias/target/precision/layout`` naming the kernel opt picked for it.
"""

from __future__ import annotations

import collections
import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArtifactError

KERNEL_ATTR = "__@kernel_type_attr@__"
HEADER = struct.Struct("<H16sQ")
# Ops registered as "extra" in Paddle Lite (lite/operators/CMakeLists.txt, activation_extra_ops):
# a phone app needs the with_extra=ON prebuilt library (or its own build) to run them.
EXTRA_OPS = {"gelu", "layer_norm", "matmul_v2", "hard_swish", "hard_sigmoid", "swish", "shape",
             "strided_slice", "expand_v2", "gather", "reduce_max", "reduce_sum", "pow", "clip",
             "assign", "top_k", "top_k_v2", "one_hot", "group_norm", "norm", "erf", "tile"}
_VAR_TYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "fp16", 5: "fp32", 6: "fp64",
              20: "uint8", 21: "int8"}
# The op types whose weight-only int8/int16 weights LightPredictor::DequantizeWeight (Lite 2.13,
# lite/api/light_api.cc) turns back into float at load; on any other op they are left unread.
DEQUANTIZED_OPS = {"conv2d", "depthwise_conv2d", "fc", "mul", "lookup_table"}
TARGET_PLACES = {"arm8": {"kARM", "kHost"}, "armv7": {"kARM", "kHost"}, "x86": {"kX86", "kHost"},
                 "opencl": {"kOpenCL", "kARM", "kHost"}}


class _Bad(Exception):
    """A structural violation; read_nb makes it its one-line ArtifactError."""


class _Buf:
    """The topology bytes, with bounds checks and a work budget shared by every table read from them."""

    def __init__(self, data: bytes) -> None:
        # The budget counts the bytes each visit covers (a table's soffset, a vector's length word
        # and entries, a string's length word and bytes). opt writes a tree, each object referenced
        # once, so a real file covers each byte at most once (~0.3x in practice); 2x leaves room for
        # shared strings. Entries all pointing at one big table run it out instead of multiplying
        # the work and the memory of the result.
        self.data, self.budget = data, 2 * len(data) + 4096

    def charge(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise _Bad("offsets repeat more than the file can hold")

    def check(self, pos: int, size: int, align: int, what: str) -> int:
        if pos < 0 or pos + size > len(self.data):  # unpack_from reads a negative pos from the end
            raise _Bad(f"{what} offset out of bounds")
        if pos % align:  # FlatBuffers aligns every object to its size; a crafted file need not
            raise _Bad(f"{what} offset misaligned")
        return pos

    def unpack(self, fmt: str, pos: int, what: str):
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.data, self.check(pos, size, size, what))[0]

    def indirect(self, at: int) -> int:
        return at + self.unpack("I", at, "field")

    def vector(self, at: int, elem: int, what: str) -> tuple[int, int]:
        start = self.check(self.indirect(at), 4, 4, what)
        n = self.unpack("I", start, what)
        if start + 4 + n * elem > len(self.data):
            raise _Bad(f"{what} length out of bounds")
        self.charge(4)
        return start + 4, n

    def string(self, at: int) -> str:
        start, n = self.vector(at, 1, "string")
        self.charge(n)
        return self.data[start:start + n].decode("utf-8", "replace")


class _Table:
    """Minimal FlatBuffers table reader (little-endian, offsets per the FlatBuffers spec)."""

    def __init__(self, buf: _Buf, pos: int) -> None:
        buf.charge(4)
        self.buf, self.pos = buf, buf.check(pos, 4, 4, "table")
        self.vt = buf.check(pos - buf.unpack("i", pos, "table"), 4, 2, "vtable")
        self.vt_len, self.size = struct.unpack_from("<HH", buf.data, self.vt)
        if self.vt_len < 4 or self.vt_len % 2 or self.size < 4:
            raise _Bad("bad vtable")
        buf.check(self.vt, self.vt_len, 2, "vtable")
        buf.check(pos, self.size, 4, "table")

    def _field(self, index: int, size: int) -> int | None:
        slot = 4 + 2 * index
        off = self.buf.unpack("H", self.vt + slot, "vtable") if slot < self.vt_len else 0
        if not off:
            return None
        if off < 4 or off + size > self.size:  # a field lies inside its table, after the soffset
            raise _Bad("field outside its table")
        return self.pos + off

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index, struct.calcsize("<" + fmt))
        return self.buf.unpack(fmt, at, "field") if at is not None else default

    def string(self, index: int) -> str | None:
        at = self._field(index, 4)
        return self.buf.string(at) if at is not None else None

    def table(self, index: int) -> _Table | None:
        at = self._field(index, 4)
        return _Table(self.buf, self.buf.indirect(at)) if at is not None else None

    def floats(self, index: int) -> list[float]:
        at = self._field(index, 4)
        start, n = self.buf.vector(at, 4, "vector") if at is not None else (0, 0)
        self.buf.charge(4 * n)
        return list(struct.unpack_from(f"<{n}f", self.buf.data, start))

    def _entries(self, index: int) -> Iterator[int]:
        """A vector's uoffset slots, lazily, so only the entries a caller visits are charged."""
        at = self._field(index, 4)
        start, n = self.buf.vector(at, 4, "vector") if at is not None else (0, 0)
        for i in range(n):
            self.buf.charge(4)
            yield start + 4 * i

    def strings(self, index: int) -> Iterator[str]:
        return (self.buf.string(at) for at in self._entries(index))

    def tables(self, index: int) -> Iterator[_Table]:
        return (_Table(self.buf, self.buf.indirect(at)) for at in self._entries(index))


@dataclass
class NbOp:
    type: str
    target: str
    precision: str
    layout: str


@dataclass
class NbInfo:
    path: str
    meta_version: int
    opt_version: str
    ops: list[NbOp]
    weight_types: dict[str, int] = field(default_factory=dict)  # persistable var dtype -> count
    quant_bits: set[int] = field(default_factory=set)  # opt's weight-only quantization, if any
    # weight var -> (input slot, per-channel scales) of opt's weight-only quantization
    quant_scales: dict[str, tuple[str, list[float]]] = field(default_factory=dict)
    quant_ops: dict[str, str] = field(default_factory=dict)  # quantized weight var -> its op type

    def op_counts(self) -> list[dict]:
        counts = collections.Counter((o.type, o.target, o.precision) for o in self.ops)
        return [{"type": t, "target": g, "precision": p, "count": n}
                for (t, g, p), n in sorted(counts.items())]

    def unplaced(self, arch: str) -> list[str]:
        allowed = TARGET_PLACES[arch]
        return sorted({o.type for o in self.ops
                       if o.type not in ("feed", "fetch") and o.target not in allowed})

    def undequantized(self) -> list[str]:
        """Op types holding weight-only quantized weights that Lite's loader leaves quantized."""
        return sorted({t for t in self.quant_ops.values() if t not in DEQUANTIZED_OPS})

    def needs_extra(self) -> list[str]:
        return sorted({o.type for o in self.ops} & EXTRA_OPS)

    def compute_precision(self) -> str:
        """What the kernels opt placed compute in (weight-only int8/int16 dequantize to fp32)."""
        kinds = {o.precision for o in self.ops}
        return "int8" if "kInt8" in kinds else "fp16" if "kFP16" in kinds else "fp32"

    def weight_precision(self) -> str:
        if self.quant_bits:  # weight-only: stored as intN, dequantized when the model loads
            return f"int{max(self.quant_bits)}"
        kinds = {k for k in self.weight_types if k not in ("int64", "int32")}
        if "int8" in kinds:
            return "int8"
        if "int16" in kinds:
            return "int16"
        if kinds == {"fp16"}:
            return "fp16"
        return "fp32" if kinds else "unknown"


def read_nb(path: str | Path) -> NbInfo:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ArtifactError(f"cannot read {p}: {e.strerror}") from None
    bad = ArtifactError(f"{p} is not a Paddle Lite naive-buffer model (.nb from opt)")
    if len(data) < HEADER.size:
        raise bad
    meta, opt_raw, size = HEADER.unpack_from(data)
    opt_version = opt_raw.split(b"\0", 1)[0].decode("ascii", "replace")
    if meta not in (1, 2) or not opt_version.startswith("v") or size <= 0 \
            or HEADER.size + size > len(data):
        raise bad
    topo = _Buf(data[HEADER.size:HEADER.size + size])
    try:
        program = _Table(topo, topo.indirect(0))
        ops, weights, bits, scales, qops = [], collections.Counter(), set(), {}, {}
        for block in itertools.islice(program.tables(0), 1):
            for var in block.tables(2):
                if var.scalar(2, "?", False):  # persistable
                    vtype = var.table(1)
                    lod = vtype.table(2) if vtype else None
                    tensor = lod.table(0) if lod else None
                    dtype = tensor.scalar(0, "i", -1) if tensor else -1
                    if dtype in _VAR_TYPES:
                        weights[_VAR_TYPES[dtype]] += 1
            for op in block.tables(3):
                kernel = ""
                slots = {arg: var.string(0) for var in op.tables(1) for arg in var.strings(1)}
                for attr in op.tables(3):
                    name = attr.string(0)
                    if name == KERNEL_ATTR:
                        kernel = attr.string(4) or ""
                    elif name == "quantize_weight_bits":
                        bits.add(attr.scalar(2, "i"))
                    elif name.endswith("_quant_scale"):
                        weight = name[:-len("_quant_scale")]
                        scales[weight] = (slots.get(weight, ""), attr.floats(6))
                        qops[weight] = op.string(0) or "?"
                parts = kernel.split("/")
                target = parts[2] if len(parts) > 2 else "unknown"
                precision = parts[3] if len(parts) > 3 else "unknown"
                layout = parts[4] if len(parts) > 4 else "unknown"
                ops.append(NbOp(op.string(0) or "?", _place(target), _prec(precision), _lay(layout)))
    except _Bad as e:
        raise ArtifactError(f"{bad}: {e}") from None
    except (struct.error, IndexError, AttributeError, UnicodeDecodeError):
        raise bad from None
    if not ops:
        raise bad
    return NbInfo(str(p), meta, opt_version, ops, dict(weights), bits, scales, qops)


# TargetType / PrecisionType / DataLayoutType enums of lite/api/paddle_place.h, as written in
# the kernel attribute (numbers).
_TARGETS = {"0": "kUnk", "1": "kHost", "2": "kX86", "3": "kCUDA", "4": "kARM", "5": "kOpenCL",
            "6": "kAny", "7": "kFPGA", "8": "kNPU", "9": "kXPU", "10": "kBM", "11": "kMLU",
            "12": "kRKNPU", "13": "kAPU", "14": "kHuaweiAscendNPU", "15": "kImaginationNNA",
            "16": "kIntelFPGA", "17": "kMetal", "18": "kNNAdapter"}
_PRECISIONS = {"0": "kUnk", "1": "kFloat", "2": "kInt8", "3": "kInt32", "4": "kAny", "5": "kFP16",
               "6": "kBool", "7": "kInt64", "8": "kInt16", "9": "kUInt8", "10": "kFP64"}
_LAYOUTS = {"0": "kUnk", "1": "kNCHW", "2": "kAny", "3": "kNHWC", "4": "kImageDefault",
            "5": "kImageFolder", "6": "kImageNW", "7": "kMetalTexture2DArray",
            "8": "kMetalTexture2D"}


def _place(v: str) -> str:
    return _TARGETS.get(v, v)


def _prec(v: str) -> str:
    return _PRECISIONS.get(v, v)


def _lay(v: str) -> str:
    return _LAYOUTS.get(v, v)


def canonicalize_nb(path: str | Path) -> None:
    """Zero the bytes after the NUL of the header's opt version. opt does not clear that 16-byte
    field: they are leftover memory, different on every run. Paddle Lite reads the field as a C
    string, so zeroing them changes nothing for it, and one model always gives the same bytes."""
    start, size = 2, 16  # after the uint16 meta version (HEADER)
    with open(path, "r+b") as f:
        f.seek(start)
        raw = f.read(size)
        end = raw.find(b"\0")
        if 0 <= end < len(raw) - 1 and raw[end:].strip(b"\0"):
            f.seek(start + end)
            f.write(bytes(len(raw) - end))
