"""The ProgramDesc compatibility passes, each on a minimal hand-built program."""

from __future__ import annotations

from paddle.base.proto import framework_pb2

from vitdeploy.lite.passes import PASSES, _tensor_desc, flatten_xshape, run_passes

VT = framework_pb2.VarType
DENSE = getattr(VT, "LOD_TENSOR", None) or VT.DENSE_TENSOR  # renamed in Paddle 3


def _program(op_type: str, with_xshape: bool = False) -> framework_pb2.ProgramDesc:
    prog = framework_pb2.ProgramDesc()
    block = prog.blocks.add()
    block.idx, block.parent_idx = 0, -1
    for name, dims in (("x", [-1, 8, 4, 4]), ("out", [-1, 8, 16])):
        v = block.vars.add()
        v.name = name
        v.type.type = DENSE
        _tensor_desc(v.type).data_type = VT.FP32
        _tensor_desc(v.type).dims.extend(dims)
    op = block.ops.add()
    op.type = op_type
    slot = op.inputs.add()
    slot.parameter, slot.arguments[:] = "X", ["x"]
    slot = op.outputs.add()
    slot.parameter, slot.arguments[:] = "Out", ["out"]
    if with_xshape:
        slot = op.outputs.add()
        slot.parameter, slot.arguments[:] = "XShape", ["xs"]
    return prog


def _outputs(prog):
    return {v.parameter: list(v.arguments) for v in prog.blocks[0].ops[0].outputs}


def test_flatten_gets_xshape_with_paddle_layout():
    prog = _program("flatten_contiguous_range")
    assert flatten_xshape(prog) == 1
    assert _outputs(prog)["XShape"] == ["out.xshape"]
    var = next(v for v in prog.blocks[0].vars if v.name == "out.xshape")
    assert list(_tensor_desc(var.type).dims) == [0, -1, 8, 4, 4]
    assert _tensor_desc(var.type).data_type == VT.FP32
    assert not var.persistable
    assert flatten_xshape(prog) == 0  # idempotent
    again = framework_pb2.ProgramDesc()  # the program still serialises and parses
    again.ParseFromString(prog.SerializeToString())
    assert _outputs(again)["XShape"] == ["out.xshape"]


def test_flatten_with_xshape_untouched():
    prog = _program("flatten_contiguous_range", with_xshape=True)
    assert flatten_xshape(prog) == 0
    assert _outputs(prog)["XShape"] == ["xs"]


def test_other_ops_untouched():
    """transpose2 without XShape is fine for opt 2.13 (checked on LeViT): left alone."""
    for op in ("transpose2", "softmax"):
        prog = _program(op)
        before = prog.SerializeToString()
        assert run_passes(prog) == {name: 0 for name in PASSES}
        assert prog.SerializeToString() == before
