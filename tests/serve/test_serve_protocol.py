"""The Open Inference Protocol codec and the dynamic batcher, on their own (no server, no model)."""

from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest

from vitdeploy.serve.batcher import DynamicBatcher
from vitdeploy.serve.config import model_specs, serve_options
from vitdeploy.serve.protocol import (
    ProtocolError,
    ResponseOutput,
    classification,
    encode_infer_response,
    parse_infer_request,
)


def _binary_request(inputs: list[tuple[str, str, list[int], bytes]], extra: dict | None = None):
    head = {"inputs": [{"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}}
                       for n, d, s, b in inputs], **(extra or {})}
    raw = json.dumps(head).encode()
    return raw + b"".join(b for *_, b in inputs), str(len(raw))


def test_binary_fp32_and_bytes_inputs():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    imgs = [b"abc", b"", b"\x00\x01"]
    packed = b"".join(struct.pack("<I", len(i)) + i for i in imgs)
    body, n = _binary_request([("x", "FP32", [1, 2, 3], x.tobytes()), ("image", "BYTES", [3], packed)],
                              {"id": "7", "parameters": {"binary_data_output": True}})
    req = parse_infer_request(body, n)
    assert req.id == "7" and req.binary_default and req.outputs is None
    np.testing.assert_array_equal(req.inputs[0].data, x)
    assert req.inputs[1].data == imgs


X1 = b'{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}'


@pytest.mark.parametrize("head,tail,needle", [
    (b"[1]", None, "must be a JSON object"),
    (b"{", None, "not valid JSON"),
    (b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}', None,
     "unknown datatype 'FP99'"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None,
     "non-negative integers"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": ["a", "b"]}]}', None,
     "numbers only"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1e999999]}]}', None,
     None),  # inf parses: the model refuses it (NaN or infinity), not the codec
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [' + b"9" * 400 + b']}]}',
     None, "out of FP32's range"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "neither 'data'"),
    (b'{"inputs": [' + X1 + b", " + X1 + b"]}", None, "named twice"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], '
     b'"parameters": {"binary_data_size": 4}}]}', b"\x00\x00\x80\x3f", "needs 8 bytes of FP32, got 4"),
    (b'{"inputs": [' + X1 + b"]}", b"xx", "2 bytes of binary data follow"),
    (b'{"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], '
     b'"parameters": {"binary_data_size": 6}}]}', b"\x09\x00\x00\x00ab", "claims 9 bytes"),
    (b'{"inputs": [' + X1 + b'], "outputs": [{"name": "y", "parameters": {"classification": -1}}]}',
     None, "non-negative integer"),
])
def test_malformed_requests_are_one_line_400(head, tail, needle):
    header = None if tail is None else str(len(head))
    if needle is None:
        assert np.isinf(parse_infer_request(head, header).inputs[0].data).all()
        return
    with pytest.raises(ProtocolError) as e:
        parse_infer_request(head + (tail or b""), header)
    assert e.value.status == 400 and needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ProtocolError, match="does not fit a body of 2 bytes"):
        parse_infer_request(b"{}", "99")


def test_deeply_nested_data_is_no_crash():
    def body(depth: int) -> bytes:
        data = "[" * depth + "1" + "]" * depth
        return f'{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1], "data": {data}}}]}}'.encode()

    assert parse_infer_request(body(500)).inputs[0].data.tolist() == [1.0]
    with pytest.raises(ProtocolError, match="not valid JSON"):  # not a RecursionError (a 500)
        parse_infer_request(body(100_000))


def test_response_binary_and_json():
    logits = np.array([[0.5, 2.0, -1.0]], np.float32)
    classes = classification(logits, 2, ["a", "b", "c"])
    assert classes == [b"2.0:1:b", b"0.5:0:a"]
    assert classification(logits, 1, []) == [b"2.0:1"]
    outs = [ResponseOutput("logits", "FP32", [1, 3], logits, True),
            ResponseOutput("probs", "BYTES", [1, 2], classes, True),
            ResponseOutput("json", "FP32", [1, 3], logits, False)]
    body, n = encode_infer_response("m", "1", "id9", outs)
    head = json.loads(body[:n])
    assert head["id"] == "id9" and head["model_name"] == "m"
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in head["outputs"]]
    assert sizes == [12, 4 + 7 + 4 + 7, None] and head["outputs"][2]["data"] == [0.5, 2.0, -1.0]
    assert np.frombuffer(body[n:n + 12], "<f4").tolist() == [0.5, 2.0, -1.0]
    body, n = encode_infer_response("m", "1", None, outs[2:])
    assert n is None and "id" not in json.loads(body)


def _run_batcher(requests: list[np.ndarray], max_batch: int, delay: float, fail: bool = False):
    from concurrent.futures import ThreadPoolExecutor

    batches: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        batches.append(len(batch))
        if fail:
            raise ValueError("boom")
        return batch * 10  # row-wise: each answer depends on its own row only

    async def main():
        with ThreadPoolExecutor(1) as pool:
            b = DynamicBatcher(run, pool, max_batch_size=max_batch, max_queue_delay_s=delay)
            b.start()
            out = await asyncio.gather(*(b.submit(r) for r in requests), return_exceptions=True)
            await b.stop()
            return out

    return asyncio.run(main()), batches


def test_batcher_gathers_splits_and_keeps_order():
    reqs = [np.full((n, 2), i, np.float32) for i, n in enumerate([1, 2, 1, 3, 1, 9, 1])]
    out, batches = _run_batcher(reqs, max_batch=4, delay=0.05)
    for r, o in zip(reqs, out):
        np.testing.assert_array_equal(o, r * 10)
    assert sum(batches) == sum(len(r) for r in reqs)
    assert 9 in batches and all(b <= 4 for b in batches if b != 9)  # too big: alone
    assert len(batches) < len(reqs)
    out, batches = _run_batcher(reqs, max_batch=1, delay=0.05)
    assert batches == [len(r) for r in reqs]  # no batching: one request per run, in order


def test_batcher_error_reaches_every_request_of_the_batch():
    out, _ = _run_batcher([np.ones((1, 2), np.float32)] * 3, max_batch=8, delay=0.05, fail=True)
    assert all(isinstance(o, ValueError) for o in out)


def test_options_and_names():
    from vitdeploy.errors import OptionError

    assert serve_options(1, 0).max_queue_delay_ms == 0
    specs = model_specs(["a/export", "deit=b/onnx", "c/x=y/m"])
    assert [s.name for s in specs] == ["export", "deit", "m"]
    assert specs[2].directory.endswith("c/x=y/m")  # "c/x" is no name: the whole is a path
    with pytest.raises(OptionError, match="name it: NAME=DIR"):
        model_specs(["c/x=y"])
