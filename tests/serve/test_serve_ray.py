"""``--replicas 2``: the same command on Ray Serve; both replicas answer, and answer correctly.
One test (Ray starts slowly); skipped with the reason where Ray cannot start on this machine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serve_helpers import ServerDidNotStart, running_server

pytest.importorskip("ray.serve", reason="ray[serve] is not installed")


@pytest.mark.slow
def test_two_ray_replicas_both_answer_correctly(sample_export, tmp_path):
    from conftest import ROOT

    from vitdeploy import Predictor
    from vitdeploy.preprocess import collect_images, preprocess_image

    images = collect_images([ROOT / "samples/digits/test"])[:16]
    with Predictor(sample_export) as p:
        tensors = np.stack([preprocess_image(i, p.info.preprocess) for i in images])
        expected = np.concatenate([p.predict_batch(t[None]) for t in tensors])
    try:
        ctx = running_server(sample_export, "--replicas", 2, "--max-queue-delay-ms", 2,
                             log=tmp_path / "server.log", timeout=420)
        server = ctx.__enter__()
    except ServerDidNotStart as e:
        if "Ray could not start" in e.log:
            pytest.skip(f"Ray cannot start on this machine: {e.log.strip().splitlines()[-1]}")
        raise
    try:
        seen: dict[str, int] = {}

        def ask(i: int) -> str:
            body = {"inputs": [{"name": "x", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                "data": tensors[i].ravel().tolist()}], "outputs": [{"name": "logits"}]}
            r = httpx.post(f"{server.url}/v2/models/export/infer", json=body, timeout=120)
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected[i], atol=1e-5)
            return r.headers["x-vitdeploy-replica"]

        # 4 clients at once, so Ray's router (power of two choices) spreads them; bounded rounds
        with ThreadPoolExecutor(4) as pool:
            for _ in range(20):
                for replica in pool.map(ask, range(len(tensors))):
                    seen[replica] = seen.get(replica, 0) + 1
                if len(seen) >= 2:
                    break
        assert len(seen) == 2, seen
    finally:
        ctx.__exit__(None, None, None)
    assert server.proc.returncode == 0
