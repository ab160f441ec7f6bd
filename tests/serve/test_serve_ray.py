"""``--replicas 2``: the same command on Ray Serve; both replicas answer, and answer correctly.
Then a stop by each signal, to the process and to its group (Ray starts slowly: ~15 s each);
skipped with the reason where Ray cannot start on this machine."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import ServerDidNotStart, running_server

pytest.importorskip("ray.serve", reason="ray[serve] is not installed")


def _start_or_skip(*args: object, **kwargs: object):
    """A running replicated server (the context, to exit, and the server), or a skip saying why
    Ray cannot start on this machine."""
    ctx = running_server(*args, timeout=420, **kwargs)
    try:
        return ctx, ctx.__enter__()
    except ServerDidNotStart as e:
        if "Ray could not start" in e.log:
            pytest.skip(f"Ray cannot start on this machine: {e.log.strip().splitlines()[-1]}")
        raise


@pytest.mark.slow
def test_two_ray_replicas_both_answer_correctly(sample_export, tmp_path):
    from conftest import ROOT

    from vitdeploy import Predictor
    from vitdeploy.preprocess import collect_images, preprocess_image

    images = collect_images([ROOT / "samples/digits/test"])[:16]
    with Predictor(sample_export) as p:
        tensors = np.stack([preprocess_image(i, p.info.preprocess) for i in images])
        expected = np.concatenate([p.predict_batch(t[None]) for t in tensors])
    ctx, server = _start_or_skip(sample_export, "--replicas", 2, "--max-queue-delay-ms", 2,
                                 log=tmp_path / "server.log")
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


def _marked(token: str) -> list[tuple[int, int, str]]:
    """(pid, pgid, name) of every process whose environment holds ``token``: the server's own
    Ray instance (the helper, GCS, raylet, workers inherit it), nothing else on the machine."""
    found = []
    needle = f"RAY_AUTH_TOKEN={token}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if needle in Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"):
                found.append((int(entry.name), os.getpgid(int(entry.name)),
                              Path(f"/proc/{entry.name}/comm").read_text().strip()))
        except (OSError, ProcessLookupError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("sig,to_group", [(signal.SIGINT, True), (signal.SIGTERM, True),
                                          (signal.SIGINT, False), (signal.SIGTERM, False)],
                         ids=["ctrl-c-group", "term-group", "int-process", "term-process"])
def test_a_signal_stops_replicas_and_leaves_no_ray_process(sample_export, tmp_path, sig, to_group):
    """A terminal's Ctrl-C signals the whole process group: Ray's processes live in a session
    of their own, so only vitdeploy gets it, stops the replicas and then its Ray instance. The
    bound below is a hang guard (it used to run on for minutes), not a timing."""
    ctx, server = _start_or_skip(sample_export, "--replicas", 2, log=tmp_path / "server.log",
                                 own_group=True)
    try:
        pid = server.proc.pid
        assert os.getpgid(pid) == pid  # a group of its own, as from a shell
        ray_procs: list = []
        token = None
        for _ in range(100):  # the server sets its token before starting Ray
            token = _server_token(pid)
            ray_procs = _marked(token) if token else []
            if len(ray_procs) >= 3:
                break
            time.sleep(0.1)
        assert ray_procs and all(pgid != pid for _, pgid, _ in ray_procs), ray_procs
        t0 = time.monotonic()
        if to_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        code = server.proc.wait(60)
        took = time.monotonic() - t0
        assert code == 0 and took < 30, (code, took)
        for _ in range(50):
            if not _marked(token):
                break
            time.sleep(0.1)
        assert _marked(token) == []
    finally:
        ctx.__exit__(None, None, None)
    text = (tmp_path / "server.log").read_text()
    assert "SIGTERM received" not in text and "Traceback" not in text
    records = server.log_records()  # every stderr line is JSON
    stopped = [r for r in records if r["msg"] == "server stopped"]
    assert len(stopped) == 1 and stopped[0]["signal"] == signal.Signals(sig).name
    assert not [r for r in records if r["level"] in ("error", "critical")], records


def _server_token(pid: int) -> str | None:
    """The Ray token the server process set for itself (in its os.environ, so visible to its
    children only: read from its Ray helper's environment)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            if b"vitdeploy.ray_local" not in cmd:
                continue
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[1]) != pid:  # its parent is the server
                continue
            for kv in Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0"):
                if kv.startswith(b"RAY_AUTH_TOKEN="):
                    return kv.split(b"=", 1)[1].decode()
        except (OSError, ValueError, IndexError):
            continue
    return None
