"""``vitdeploy serve`` end to end: a real server process on 127.0.0.1, called with Triton's official
client (tritonclient) and plain HTTP. Answers must equal ``vitdeploy predict`` and single-request
answers; bad requests get a 4xx with one line and the server keeps serving. No timing asserted."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import signal
import socket
import threading

import httpx
import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, invoke, run_cli
from PIL import Image
from serve_helpers import Server, running_server

tritonclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

MAX_BATCH = 8


@pytest.fixture(scope="module")
def images(sample) -> list:
    from vitdeploy.preprocess import collect_images

    return collect_images([ROOT / sample["test_dir"]])


@pytest.fixture(scope="module")
def server(sample_export, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running_server(sample_export, "--max-batch-size", MAX_BATCH, "--max-queue-delay-ms", 5,
                        "--max-request-mb", 1, log=log) as s:
        yield s


@pytest.fixture(scope="module")
def reference(sample_export, images):
    """Each image's logits from the in-process Predictor, one image per run (batch 1)."""
    from vitdeploy import Predictor
    from vitdeploy.preprocess import preprocess_image

    with Predictor(sample_export) as p:
        tensors = np.stack([preprocess_image(i, p.info.preprocess) for i in images])
        logits = np.concatenate([p.predict_batch(t[None]) for t in tensors])
    return tensors, logits


def _client(server: Server):
    return tritonclient.InferenceServerClient(server.address, network_timeout=120)


def _image_input(paths) -> object:
    inp = tritonclient.InferInput("image", [len(paths)], "BYTES")
    inp.set_data_from_numpy(np.array([p.read_bytes() for p in paths], dtype=np.object_))
    return inp


def _parse_classes(row) -> list[tuple[float, int, str]]:
    out = []
    for item in row:
        score, idx, label = item.decode().split(":", 2)
        out.append((float(score), int(idx), label))
    return out


def test_metadata_health_and_config(server):
    c = _client(server)
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata()
    assert meta["name"] == "vitdeploy" and "binary_tensor_data" in meta["extensions"]
    m = c.get_model_metadata("export")
    assert m["name"] == "export" and m["versions"] == ["1"] and m["platform"] == "paddle_inference"
    assert {i["name"]: (i["datatype"], i["shape"]) for i in m["inputs"]} == {
        "x": ("FP32", [-1, 3, 32, 32]), "image": ("BYTES", [-1])}
    assert {o["name"]: (o["datatype"], o["shape"]) for o in m["outputs"]} == {
        "logits": ("FP32", [-1, 10]), "probs": ("FP32", [-1, 10])}
    assert c.is_model_ready("export") and not c.is_model_ready("nope")
    assert c.get_model_config("export")["max_batch_size"] == MAX_BATCH
    assert c.get_model_repository_index() == [{"name": "export", "version": "1", "state": "READY"}]
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200 and "vitdeploy_batch_size_bucket" in r.text
    assert "process_resident_memory_bytes" in r.text


def test_image_bytes_equal_predict(server, sample, sample_export, images):
    """tritonclient sends the held-out images' bytes (binary extension, several per request);
    the top-3 with labels is what `vitdeploy predict` says for each."""
    r = run_cli("predict", sample_export, ROOT / sample["test_dir"], "--json", "--topk", "3")
    assert r.code == 0, r.stderr
    expected = json.loads(r.stdout)
    c, got = _client(server), []
    for start in range(0, len(images), 20):
        chunk = images[start:start + 20]
        res = c.infer("export", [_image_input(chunk)],
                      outputs=[tritonclient.InferRequestedOutput("probs", class_count=3)])
        got += [_parse_classes(row) for row in res.as_numpy("probs")]
    assert len(got) == len(expected) == len(images)
    for exp, top in zip(expected, got):
        assert [(i, label) for _s, i, label in top] == [(t["class_id"], t["label"]) for t in exp["top"]]
        np.testing.assert_allclose([s for s, _i, _l in top], [t["score"] for t in exp["top"]],
                                   atol=1e-6)


def test_tensor_input_binary_and_json(server, reference):
    tensors, logits = reference
    batch = tensors[:6]
    c = _client(server)
    inp = tritonclient.InferInput("x", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)  # binary tensor data
    res = c.infer("export", [inp])  # no outputs named: all of them, binary
    np.testing.assert_allclose(res.as_numpy("logits"), logits[:6], atol=1e-5)
    probs = res.as_numpy("probs")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == logits[:6].argmax(axis=1)).all()
    # plain HTTP, JSON both ways (nested data is accepted too)
    body = {"id": "req-7", "inputs": [{"name": "x", "shape": [2, 3, 32, 32], "datatype": "FP32",
                                       "data": batch[:2].tolist()}],
            "outputs": [{"name": "logits"}]}
    r = httpx.post(f"{server.url}/v2/models/export/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-7" and out["model_name"] == "export" and out["model_version"] == "1"
    [o] = out["outputs"]
    assert o["name"] == "logits" and o["shape"] == [2, 10] and o["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(o["data"]).reshape(2, 10), logits[:2], atol=1e-5)
    # JSON with base64 image bytes, versioned URL
    b64 = base64.b64encode(_png(np.full((8, 8), 200, np.uint8))).decode()
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}],
            "outputs": [{"name": "probs", "parameters": {"classification": 2}}]}
    r = httpx.post(f"{server.url}/v2/models/export/versions/1/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    [o] = r.json()["outputs"]
    assert o["datatype"] == "BYTES" and o["shape"] == [1, 2] and len(o["data"][0].split(":")) == 3


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


async def _load(server: Server, tensors: np.ndarray, clients: int, per_client: int) -> list:
    """``clients`` concurrent clients, each ``per_client`` requests of 1 or 2 rows; returns, per
    request, the row indices sent and the logits received."""
    from tritonclient.http.aio import InferenceServerClient

    async def one_client(k: int) -> list:
        answers = []
        async with InferenceServerClient(server.address, conn_timeout=120) as c:
            for j in range(per_client):
                n = 1 + (j + k) % 2
                rows = [(k * 31 + j * 7 + r) % len(tensors) for r in range(n)]
                inp = tritonclient.InferInput("x", [n, 3, 32, 32], "FP32")
                inp.set_data_from_numpy(tensors[rows])
                res = await c.infer("export", [inp],
                                    outputs=[tritonclient.InferRequestedOutput("logits")])
                answers.append((rows, res.as_numpy("logits")))
        return answers

    results = await asyncio.gather(*(one_client(k) for k in range(clients)))
    return [a for r in results for a in r]


def _metric(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}\{{[^}}]*model=\"export\"[^}}]*\}} (\S+)$",
                                                        text, re.MULTILINE))


def test_batching_keeps_single_request_answers_under_load(server, reference):
    """4 clients x 50 requests, concurrently: every response is its own rows' answer, equal to the
    single-request answer (batch 1 in the server, sequential), and some batches held several
    requests; no request failed."""
    tensors, logits = reference
    tensors = tensors[:40]
    c = _client(server)
    single = []
    for i in range(len(tensors)):  # one client, one row at a time: batches of one
        inp = tritonclient.InferInput("x", [1, 3, 32, 32], "FP32")
        inp.set_data_from_numpy(tensors[i:i + 1])
        single.append(c.infer("export", [inp]).as_numpy("logits")[0])
    single = np.stack(single)
    np.testing.assert_allclose(single, logits[:40], atol=1e-5)
    before = httpx.get(f"{server.url}/metrics").text
    answers = asyncio.run(_load(server, tensors, clients=4, per_client=50))
    after = httpx.get(f"{server.url}/metrics").text
    assert len(answers) == 200
    for rows, got in answers:
        assert got.shape == (len(rows), 10)
        np.testing.assert_allclose(got, single[rows], atol=1e-5)
        assert (got.argmax(axis=1) == single[rows].argmax(axis=1)).all()
    def grew(name: str) -> float:
        return _metric(after, name) - _metric(before, name)

    batches, requests = grew("vitdeploy_batch_requests_count"), grew("vitdeploy_batch_requests_sum")
    rows = grew("vitdeploy_batch_size_sum")
    assert requests == 200 and rows == sum(len(r) for r, _ in answers)
    assert batches < requests  # dynamic batching did gather requests
    assert _metric(after, 'vitdeploy_requests_total') >= 240
    assert 'code="500"' not in after


def _bomb_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_requests_get_one_line_4xx_and_the_server_keeps_serving(server, reference):
    tensors, logits = reference
    url = f"{server.url}/v2/models/export/infer"

    def tensor_body(shape, data=None, name="x", datatype="FP32") -> dict:
        data = np.zeros(shape, np.float32).ravel().tolist() if data is None else data
        return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": data}]}

    def image_body(raw: bytes) -> dict:
        return {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                            "data": [base64.b64encode(raw).decode()]}]}

    nan = np.zeros((1, 3, 32, 32), np.float32).ravel().tolist()
    nan[5] = float("nan")
    cases = [
        ("post", f"{server.url}/v2/models/nope/infer", tensor_body((1, 3, 32, 32)), 404,
         "unknown model 'nope'; this server serves: export"),
        ("get", f"{server.url}/v2/models/nope", None, 404, "unknown model 'nope'"),
        ("get", f"{server.url}/v2/models/export/versions/2", None, 404, "has no version '2'"),
        ("post", url, tensor_body((1, 3, 16, 16)), 400, "takes 'x' (FP32 [N, 3, 32, 32]"),
        ("post", url, tensor_body((0, 3, 32, 32), []), 400, "takes 'x'"),
        ("post", url, tensor_body((1, 3, 32, 32), [1.0]), 400, "holds 3072 elements, 'data' has 1"),
        ("post", url, json.dumps(tensor_body((1, 3, 32, 32), nan)).encode(), 400, "NaN or infinity"),
        ("post", url, tensor_body((1,), [1], name="x", datatype="INT64"), 400, "is INT64 [1]"),
        ("post", url, tensor_body((1,), [1], name="y"), 400, "unknown input 'y'"),
        ("post", url, image_body(b"not an image"), 400, "image[0] is not a decodable image"),
        ("post", url, image_body(_bomb_png()), 400, "image too large: image[0] is 30000x30000"),
        ("post", url, {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                   "data": ["%%%"]}]}, 400, "not a base64 string"),
        ("post", url, {**tensor_body((1, 3, 32, 32)), "outputs": [{"name": "boxes"}]}, 400,
         "unknown output 'boxes'; model 'export' outputs: logits, probs"),
        ("post", url, b"{not json", 400, "not valid JSON"),
        ("post", url, {"inputs": []}, 400, "has no 'inputs'"),
        ("post", url, b"x" * (2 * 2**20), 413, "the limit is 1048576"),
        ("get", url, None, 405, "GET is not allowed"),
        ("get", f"{server.url}/v1/models", None, 404, "Open Inference Protocol"),
    ]
    with httpx.Client(timeout=60) as http:
        for method, where, body, status, needle in cases:
            kwargs = {"content": body} if isinstance(body, bytes) else {"json": body} if body else {}
            r = getattr(http, method)(where, **kwargs)
            assert r.status_code == status, (needle, r.status_code, r.text)
            err = r.json()
            assert list(err) == ["error"] and "\n" not in err["error"], err
            assert needle in err["error"], (needle, err)
            assert "Traceback" not in r.text
            ok = http.post(url, json=tensor_body((1, 3, 32, 32), tensors[0].ravel().tolist()))
            assert ok.status_code == 200  # still serving
            np.testing.assert_allclose(np.array(ok.json()["outputs"][0]["data"]), logits[0], atol=1e-5)
    # tritonclient surfaces the server's line as its exception message
    with pytest.raises(InferenceServerException, match="image\\[0\\] is not a decodable image"):
        inp = tritonclient.InferInput("image", [1], "BYTES")
        inp.set_data_from_numpy(np.array([b"garbage"], dtype=np.object_))
        _client(server).infer("export", [inp])
    records = server.log_records()  # every stderr line is JSON
    assert not [r for r in records if r.get("status", 0) >= 500 or r.get("level") == "error"]


def test_graceful_shutdown_finishes_in_flight_requests(sample_export, reference, tmp_path):
    """SIGTERM while requests wait in the batcher (a long queue delay): each still gets its answer,
    then the server exits 0."""
    tensors, logits = reference
    with running_server(sample_export, "--max-batch-size", 64, "--max-queue-delay-ms", 1500,
                        log=tmp_path / "server.log") as server:
        results: dict[int, httpx.Response] = {}

        def send(i: int) -> None:
            body = {"inputs": [{"name": "x", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                "data": tensors[i].ravel().tolist()}], "outputs": [{"name": "logits"}]}
            results[i] = httpx.post(f"{server.url}/v2/models/export/infer", json=body, timeout=60)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for _ in range(200):  # until all six are inside the server
            if "vitdeploy_requests_in_flight 6.0" in httpx.get(f"{server.url}/metrics").text:
                break
            threading.Event().wait(0.05)
        code = server.stop(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert code == 0
        assert sorted(results) == list(range(6))
        for i, r in results.items():
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["outputs"][0]["data"], logits[i], atol=1e-5)
        msgs = [r["msg"] for r in server.log_records()]
        assert "server stopped" in msgs and "stopped" in msgs


@pytest.mark.parametrize("args,needles", [
    (("--port", "70000"), ("--port 70000 is out of range",)),
    (("--max-batch-size", "0"), ("--max-batch-size 0 is out of range",)),
    (("--max-queue-delay-ms", "nan"), ("--max-queue-delay-ms nan is out of range",)),
    (("--max-queue-delay-ms", "-1"), ("--max-queue-delay-ms -1.0 is out of range",)),
    (("--max-queue-delay-ms", "inf"), ("--max-queue-delay-ms inf",)),
    (("--max-request-mb", "0"), ("--max-request-mb 0.0 is out of range",)),
    (("--replicas", "0"), ("--replicas 0 must be a positive integer",)),
    (("--threads", "0"), ("--threads 0",)),
    (("--runtime", "tensorrt"), ("unknown runtime 'tensorrt'", "paddle, onnxruntime")),
    (("--runtime", "onnxruntime"), ("runtime 'onnxruntime' can load",)),
    (("--precision", "bf16"), ("cannot be asked for precision 'bf16'",)),
    (("--log-level", "loud"), ("unknown --log-level 'loud'",)),
])
def test_options_are_checked_before_the_server_starts(sample_export, args, needles):
    assert_one_line_error(invoke("serve", sample_export, *args), *needles)


def test_artifacts_and_port_checked_before_the_server_starts(sample_export, tmp_path):
    assert_one_line_error(invoke("serve", tmp_path / "nothing", "--port", "0"),
                          "artifact directory not found")
    bad = tmp_path / "copy"
    import shutil

    shutil.copytree(sample_export, bad)
    (bad / "labels.txt").write_text("tampered\n")
    assert_one_line_error(invoke("serve", bad, "--port", "0"), "does not match its sha256")
    assert_one_line_error(invoke("serve", sample_export, f"other={tmp_path}/x", sample_export),
                          "two artifacts would be served as 'export'", "NAME=DIR")
    assert_one_line_error(invoke("serve", f"{tmp_path}/a b!"), "cannot serve", "NAME=DIR")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(invoke("serve", sample_export, "--port", port),
                              f"port {port} on 127.0.0.1 is already in use")


def test_serve_export_and_onnx_answer_like_predict(sample_export, sample_onnx, images, tmp_path):
    """The acceptance path: serve the export and its ONNX; tritonclient's top-1 on a sample image
    is `vitdeploy predict`'s, for both."""
    picks = images[::60]
    with running_server(sample_export, sample_onnx, log=tmp_path / "server.log") as server:
        c = _client(server)
        assert c.get_model_metadata("onnx")["platform"] == "onnxruntime_onnx"
        for name, artifact in (("export", sample_export), ("onnx", sample_onnx)):
            r = run_cli("predict", artifact, *picks, "--json", "--topk", "1")
            assert r.code == 0, r.stderr
            expected = [p["top"][0] for p in json.loads(r.stdout)]
            res = c.infer(name, [_image_input(picks)],
                          outputs=[tritonclient.InferRequestedOutput("probs", class_count=1)])
            got = [_parse_classes(row)[0] for row in res.as_numpy("probs")]
            assert [(i, label) for _s, i, label in got] == [(e["class_id"], e["label"]) for e in expected]
            np.testing.assert_allclose([s for s, _i, _l in got], [e["score"] for e in expected],
                                       atol=1e-5)
