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


PASSES: dict[str, Callable[[Any], int]] = {
    "flatten_xshape": flatten_xshape,
}


def run_passes(program: Any) -> dict[str, int]:
    return {name: fn(program) for name, fn in PASSES.items()}
