"""The Open Inference Protocol (KServe v2, as Triton speaks it) over HTTP/REST: request parsing and
response encoding, with Triton's binary tensor data and classification extensions.

No web framework here: bytes in, bytes out, so the FastAPI app (single process) and the Ray Serve
replicas share it, and it is tested on its own. Every malformed request is a ``ProtocolError``
carrying the HTTP status and one line for the ``{"error": ...}`` body."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import VitdeployError

HEADER_LENGTH = "inference-header-content-length"  # the binary extension's header
# Datatypes a client may name (the protocol's table); we take FP32 tensors and BYTES images.
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BF16", "BYTES")
EXTENSIONS = ["binary_tensor_data", "classification"]


class ProtocolError(VitdeployError):
    """A request the server refuses: ``status`` is the HTTP code (4xx), the message one line."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RequestInput:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[bytes]  # FP32: an array of ``shape``; BYTES: the elements, flat


@dataclass
class RequestedOutput:
    name: str
    binary: bool
    classification: int = 0  # > 0: top-k as "value:index:label" strings (classification ext.)


@dataclass
class InferRequest:
    id: str | None
    inputs: list[RequestInput]
    outputs: list[RequestedOutput] | None  # None: every output, as ``binary_default`` says
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResponseOutput:
    name: str
    datatype: str  # "FP32" or "BYTES"
    shape: list[int]
    data: np.ndarray | list[bytes]
    binary: bool


def _obj(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _shape(value: Any, where: str) -> list[int]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)):
        raise ProtocolError(f"{where}: 'shape' must be a non-empty list of non-negative integers, "
                            f"got {json.dumps(value)[:80]}")
    return value


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) per the Inference-Header-Content-Length header."""
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise ProtocolError(f"Inference-Header-Content-Length {header_length!r} does not fit a "
                            f"body of {len(body)} bytes")
    return body[:n], body[n:]


def _parse_bytes_tensor(raw: bytes, count: int, where: str) -> list[bytes]:
    """The binary extension's BYTES layout: per element a little-endian uint32 length + bytes."""
    items, pos = [], 0
    for i in range(count):
        if pos + 4 > len(raw):
            raise ProtocolError(f"{where}: binary data ends inside element {i} of {count}")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise ProtocolError(f"{where}: element {i} claims {n} bytes, past the end of its data")
        items.append(raw[pos:pos + n])
        pos += n
    if pos != len(raw):
        raise ProtocolError(f"{where}: {len(raw) - pos} bytes left after its {count} elements")
    return items


def _flatten(data: Any) -> list:
    out: list = []
    stack = [data]
    while stack:  # iterative: a deeply nested list must not exhaust the recursion limit
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _parse_input(spec: Any, i: int, binary: bytes, pos: int) -> tuple[RequestInput, int]:
    spec = _obj(spec, f"inputs[{i}]")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"inputs[{i}] has no 'name'")
    where = f"input '{name}'"
    datatype = spec.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype {datatype!r}; the protocol's are "
                            f"{', '.join(DATATYPES)}")
    shape = _shape(spec.get("shape"), where)
    count = math.prod(shape)
    params = _obj(spec.get("parameters", {}), f"{where} 'parameters'")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or pos + size > len(binary):
            raise ProtocolError(f"{where}: binary_data_size {size!r} does not fit the "
                                f"{len(binary) - pos} bytes of binary data left")
        raw = binary[pos:pos + size]
        pos += size
        if datatype == "BYTES":
            return RequestInput(name, datatype, shape, _parse_bytes_tensor(raw, count, where)), pos
        if datatype != "FP32":
            return RequestInput(name, datatype, shape, []), pos  # refused by the model, by name
        if size != count * 4:
            raise ProtocolError(f"{where}: shape {shape} needs {count * 4} bytes of FP32, got {size}")
        return RequestInput(name, datatype, shape, np.frombuffer(raw, "<f4").reshape(shape)), pos
    if "data" not in spec:
        raise ProtocolError(f"{where} has neither 'data' nor a binary_data_size parameter")
    flat = _flatten(spec["data"])
    if len(flat) != count:
        raise ProtocolError(f"{where}: shape {shape} holds {count} elements, 'data' has {len(flat)}")
    if datatype == "BYTES":  # JSON cannot carry raw image bytes: base64 (or use binary data)
        items = []
        for j, v in enumerate(flat):
            try:
                items.append(base64.b64decode(v, validate=True))
            except (binascii.Error, TypeError, ValueError):
                raise ProtocolError(f"{where}: element {j} is not a base64 string (in JSON, BYTES "
                                    "elements are base64; or send them as binary data)") from None
        return RequestInput(name, datatype, shape, items), pos
    if datatype != "FP32":
        return RequestInput(name, datatype, shape, []), pos
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise ProtocolError(f"{where}: FP32 'data' must hold numbers only")
    try:
        array = np.asarray(flat, np.float32).reshape(shape)
    except (OverflowError, ValueError):  # an integer beyond any float
        raise ProtocolError(f"{where}: a value is out of FP32's range") from None
    return RequestInput(name, datatype, shape, array), pos


def _parse_output(spec: Any, i: int, binary_default: bool) -> RequestedOutput:
    spec = _obj(spec, f"outputs[{i}]")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"outputs[{i}] has no 'name'")
    params = _obj(spec.get("parameters", {}), f"output '{name}' 'parameters'")
    binary = params.get("binary_data", binary_default)
    k = params.get("classification", 0)
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ProtocolError(f"output '{name}': 'classification' must be a non-negative integer")
    return RequestedOutput(name, bool(binary), k)


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """An inference request: JSON, optionally followed by binary tensor data."""
    head, binary = _split_body(body, header_length)
    try:
        req = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ProtocolError(f"the request is not valid JSON ({why}); send the Open Inference "
                            "Protocol's inference request object") from None
    req = _obj(req, "the inference request")
    params = _obj(req.get("parameters", {}), "'parameters'")
    binary_default = bool(params.get("binary_data_output", False))
    inputs_spec = req.get("inputs")
    if not isinstance(inputs_spec, list) or not inputs_spec:
        raise ProtocolError("the request has no 'inputs'")
    inputs, pos = [], 0
    for i, spec in enumerate(inputs_spec):
        inp, pos = _parse_input(spec, i, binary, pos)
        inputs.append(inp)
    if pos != len(binary):
        raise ProtocolError(f"{len(binary) - pos} bytes of binary data follow the request that no "
                            "input's binary_data_size accounts for")
    if len({inp.name for inp in inputs}) != len(inputs):
        raise ProtocolError("an input is named twice")
    outputs = req.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise ProtocolError("'outputs' must be a list")
        outputs = [_parse_output(o, i, binary_default) for i, o in enumerate(outputs)]
    rid = req.get("id")
    return InferRequest(rid if isinstance(rid, str) else None, inputs, outputs, binary_default, params)


def _bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def encode_infer_response(model: str, version: str, request_id: str | None,
                          outputs: list[ResponseOutput]) -> tuple[bytes, int | None]:
    """(body, JSON header length or None when every output is JSON)."""
    entries, chunks = [], []
    for o in outputs:
        entry: dict[str, Any] = {"name": o.name, "datatype": o.datatype, "shape": o.shape}
        if o.binary:
            raw = (_bytes_tensor(o.data) if o.datatype == "BYTES"  # type: ignore[arg-type]
                   else np.ascontiguousarray(o.data, "<f4").tobytes())
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif o.datatype == "BYTES":
            entry["data"] = [b.decode("utf-8", "replace") for b in o.data]  # type: ignore[union-attr]
        else:
            entry["data"] = np.asarray(o.data, np.float32).ravel().tolist()
        entries.append(entry)
    resp: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id is not None:
        resp["id"] = request_id
    head = json.dumps(resp, allow_nan=False, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return head + b"".join(chunks), len(head)


def classification(scores: np.ndarray, k: int, labels: list[str]) -> list[bytes]:
    """The classification extension's strings, row-major [N, k]: "value:index:label" (no label
    part without labels), best first, ties to the lower index (``predictor.topk``, so the ranking is
    exactly predict's)."""
    from ..predictor import topk

    return [(f"{t.score!r}:{t.class_id}" + (f":{t.label}" if t.class_id < len(labels) else ""))
            .encode() for row in topk(scores, k, labels) for t in row]
