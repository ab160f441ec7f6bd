"""Read Paddle Lite's naive-buffer ``.nb`` files without Paddle Lite.

Layout: uint16 meta_version, char[16] opt_version, uint64 topology size, then the topology as
a FlatBuffers ``paddle.lite.fbs.proto.ProgramDesc`` (lite/model_parser/flatbuffers/
framework.fbs), then the parameters. Each op carries ``__@kernel_type_attr@__`` =
``op/alias/target/precision/layout`` naming the kernel opt picked for it.
"""

from __future__ import annotations

import collections
import struct
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
TARGET_PLACES = {"arm8": {"kARM", "kHost"}, "armv7": {"kARM", "kHost"}, "x86": {"kX86", "kHost"},
                 "opencl": {"kOpenCL", "kARM", "kHost"}}


class _Table:
    """Minimal FlatBuffers table reader (little-endian, offsets per the FlatBuffers spec)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt, self.vt_len = vtable, struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vt_len:
            return None
        off = struct.unpack_from("<H", self.buf, self.vt + slot)[0]
        return self.pos + off if off else None

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at is not None else default

    def _indirect(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def string(self, index: int) -> str | None:
        at = self._field(index)
        if at is None:
            return None
        start = self._indirect(at)
        n = struct.unpack_from("<I", self.buf, start)[0]
        return self.buf[start + 4:start + 4 + n].decode("utf-8", "replace")

    def table(self, index: int) -> _Table | None:
        at = self._field(index)
        return _Table(self.buf, self._indirect(at)) if at is not None else None

    def _vector(self, index: int) -> tuple[int, int] | None:
        at = self._field(index)
        if at is None:
            return None
        start = self._indirect(at)
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def floats(self, index: int) -> list[float]:
        vec = self._vector(index)
        return list(struct.unpack_from(f"<{vec[1]}f", self.buf, vec[0])) if vec else []

    def strings(self, index: int) -> list[str]:
        vec = self._vector(index)
        out = []
        for i in range(vec[1] if vec else 0):
            at = self._indirect(vec[0] + 4 * i)
            n = struct.unpack_from("<I", self.buf, at)[0]
            out.append(self.buf[at + 4:at + 4 + n].decode("utf-8", "replace"))
        return out

    def tables(self, index: int) -> list[_Table]:
        at = self._field(index)
        if at is None:
            return []
        start = self._indirect(at)
        n = struct.unpack_from("<I", self.buf, start)[0]
        return [_Table(self.buf, self._indirect(start + 4 + 4 * i)) for i in range(n)]


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

    def op_counts(self) -> list[dict]:
        counts = collections.Counter((o.type, o.target, o.precision) for o in self.ops)
        return [{"type": t, "target": g, "precision": p, "count": n}
                for (t, g, p), n in sorted(counts.items())]

    def unplaced(self, arch: str) -> list[str]:
        allowed = TARGET_PLACES[arch]
        return sorted({o.type for o in self.ops
                       if o.type not in ("feed", "fetch") and o.target not in allowed})

    def needs_extra(self) -> list[str]:
        return sorted({o.type for o in self.ops} & EXTRA_OPS)

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
    topo = data[HEADER.size:HEADER.size + size]
    try:
        program = _Table(topo, struct.unpack_from("<I", topo, 0)[0])
        blocks = program.tables(0)
        ops, weights, bits, scales = [], collections.Counter(), set(), {}
        for block in blocks[:1]:
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
                parts = kernel.split("/")
                target = parts[2] if len(parts) > 2 else "unknown"
                precision = parts[3] if len(parts) > 3 else "unknown"
                layout = parts[4] if len(parts) > 4 else "unknown"
                ops.append(NbOp(op.string(0) or "?", _place(target), _prec(precision), _lay(layout)))
    except (struct.error, IndexError, AttributeError, UnicodeDecodeError):
        raise bad from None
    if not ops:
        raise bad
    return NbInfo(str(p), meta, opt_version, ops, dict(weights), bits, scales)


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
