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


def _linear(bias: bool, trans_y: bool = False) -> framework_pb2.ProgramDesc:
    """x [-1, 197, 8] @ w [8, 24] (a persistable weight), then + b when ``bias``."""
    prog = framework_pb2.ProgramDesc()
    block = prog.blocks.add()
    block.idx, block.parent_idx = 0, -1
    for name, dims, persistable in (("x", [-1, 197, 8], False), ("w", [8, 24], True),
                                    ("b", [24], True), ("mm", [-1, 197, 24], False),
                                    ("out", [-1, 197, 24], False)):
        v = block.vars.add()
        v.name, v.persistable = name, persistable
        v.type.type = DENSE
        _tensor_desc(v.type).data_type = VT.FP32
        _tensor_desc(v.type).dims.extend(dims)
    mm = block.ops.add()
    mm.type = "matmul_v2"
    for param, args, slots in (("X", "x", mm.inputs), ("Y", "w", mm.inputs), ("Out", "mm", mm.outputs)):
        slot = slots.add()
        slot.parameter, slot.arguments[:] = param, [args]
    for name in ("trans_x", "trans_y"):
        a = mm.attrs.add()
        a.name, a.type, a.b = name, framework_pb2.BOOLEAN, trans_y and name == "trans_y"
    if bias:
        add = block.ops.add()
        add.type = "elementwise_add"
        for param, args, slots in (("X", "mm", add.inputs), ("Y", "b", add.inputs),
                                   ("Out", "out", add.outputs)):
            slot = slots.add()
            slot.parameter, slot.arguments[:] = param, [args]
    return prog


def test_bias_free_linear_becomes_fc():
    """ViT_small's qkv (nn.Linear without bias): a matmul_v2 Lite's loader would not dequantize."""
    prog = _linear(bias=False)
    assert PASSES["bias_free_linear_to_fc"](prog) == 1
    op = prog.blocks[0].ops[0]
    assert op.type == "fc"
    assert {s.parameter: list(s.arguments) for s in op.inputs} == {"Input": ["x"], "W": ["w"]}
    attrs = {a.name: a for a in op.attrs}
    assert attrs["in_num_col_dims"].i == 2 and attrs["activation_type"].s == ""
    assert "trans_x" not in attrs and "trans_y" not in attrs
    assert PASSES["bias_free_linear_to_fc"](prog) == 0  # idempotent
    again = framework_pb2.ProgramDesc()
    again.ParseFromString(prog.SerializeToString())
    assert again.blocks[0].ops[0].type == "fc"


def test_linear_with_bias_or_transposed_weight_untouched():
    """With a bias opt fuses matmul_v2 + elementwise_add into fc itself; a transposed weight is
    not an fc weight."""
    for prog in (_linear(bias=True), _linear(bias=False, trans_y=True)):
        before = prog.SerializeToString()
        assert PASSES["bias_free_linear_to_fc"](prog) == 0
        assert prog.SerializeToString() == before
