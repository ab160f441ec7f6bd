"""Compatibility passes over a legacy Paddle ProgramDesc, run before Paddle Lite's ``opt``.

Each pass is small, named, idempotent, and returns how many ops it changed. They operate on the
protobuf ``framework_pb2.ProgramDesc`` (from Paddle 2.6 in the Lite worker, or Paddle 3 in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _args(slots, name: str) -> list[str]:
    for v in slots:
        if v.parameter == name:
            return list(v.arguments)
    return []


def _var(block, name: str):
    for v in block.vars:
        if v.name == name:
            return v
    return None


def _tensor_desc(var_type):
    """The tensor desc of a VarType: ``lod_tensor`` in Paddle 2.x, ``dense_tensor`` in Paddle 3."""
    field = "lod_tensor" if "lod_tensor" in var_type.DESCRIPTOR.fields_by_name else "dense_tensor"
    return getattr(var_type, field).tensor


def _add_xshape(block, op, x_name: str, out_name: str) -> None:
    """Append an XShape output ([0] + x.shape, x's dtype), the way Paddle < 2.5 wrote it."""
    xshape = f"{out_name}.xshape"
    if _var(block, xshape) is None:
        src = _var(block, x_name)
        new = block.vars.add()
        if src is not None:
            new.CopyFrom(src)
            dims = list(_tensor_desc(src.type).dims)
            del _tensor_desc(new.type).dims[:]
            _tensor_desc(new.type).dims.extend([0] + dims)
        new.name = xshape
        new.persistable = False
    slot = op.outputs.add()
    slot.parameter = "XShape"
    slot.arguments.append(xshape)


def flatten_xshape(program: Any) -> int:
    """opt 2.13 dereferences flatten_contiguous_range's XShape output, which Paddle >= 2.5 no
    longer writes: without it opt segfaults. Give it one."""
    changed = 0
    for block in program.blocks:
        for op in block.ops:
            if op.type == "flatten_contiguous_range" and not _args(op.outputs, "XShape"):
                _add_xshape(block, op, _args(op.inputs, "X")[0], _args(op.outputs, "Out")[0])
                changed += 1
    return changed


def _attr(op, name: str):
    for a in op.attrs:
        if a.name == name:
            return a
    return None


def _is_bias_free_linear(block, op, persistable: set[str], biased: set[str]) -> int | None:
    """X's rank when ``op`` is a matmul_v2 by a persistable 2-D weight, untransposed, whose output
    gets no bias added (a bias-free ``nn.Linear``), else None."""
    x, y, out = _args(op.inputs, "X"), _args(op.inputs, "Y"), _args(op.outputs, "Out")
    if op.type != "matmul_v2" or not (x and y and out) or y[0] not in persistable \
            or out[0] in biased:
        return None
    if any(a is not None and a.b for a in (_attr(op, "trans_x"), _attr(op, "trans_y"))):
        return None
    xv, yv = _var(block, x[0]), _var(block, y[0])
    if xv is None or yv is None or len(_tensor_desc(yv.type).dims) != 2:
        return None
    rank = len(_tensor_desc(xv.type).dims)
    return rank if rank >= 2 else None


def bias_free_linear_to_fc(program: Any) -> int:
    """A bias-free ``nn.Linear`` (ViT_small's qkv) stays a matmul_v2 in opt, and Paddle Lite
    2.13's LightPredictor::DequantizeWeight dequantizes weight-only int8/int16 weights of conv,
    fc, mul and lookup_table only: on the ARM kernels that matmul_v2 then reads an uninitialised
    float buffer (ViT_small int8: cosine 0.45 against Paddle; the x86 twin, whose weights are
    rounded in Python, does not show it). As an ``fc`` without Bias (same product, a kernel every
    build has) its weight is dequantized."""
    changed = 0
    for block in program.blocks:
        persistable = {v.name for v in block.vars if v.persistable}
        biased = {_args(op.inputs, "X")[0] for op in block.ops if op.type == "elementwise_add"
                  and _args(op.inputs, "X") and set(_args(op.inputs, "Y")) <= persistable}
        for op in block.ops:
            rank = _is_bias_free_linear(block, op, persistable, biased)
            if rank is None:
                continue
            op.type = "fc"
            for slot in op.inputs:
                slot.parameter = {"X": "Input", "Y": "W"}.get(slot.parameter, slot.parameter)
            keep = [a for a in op.attrs if a.name not in ("trans_x", "trans_y")]
            del op.attrs[:]
            op.attrs.extend(keep)
            cols = op.attrs.add()
            cols.name, cols.type, cols.i = "in_num_col_dims", 0, rank - 1  # AttrType INT
            act = op.attrs.add()
            act.name, act.type, act.s = "activation_type", 2, ""  # AttrType STRING
            changed += 1
    return changed


PASSES: dict[str, Callable[[Any], int]] = {
    "flatten_xshape": flatten_xshape,
    "bias_free_linear_to_fc": bias_free_linear_to_fc,
}


def run_passes(program: Any) -> dict[str, int]:
    return {name: fn(program) for name, fn in PASSES.items()}
