"""Connections that misbehave: a client that disconnects mid-body is one info line with status
499 (never a 500 with a traceback); idle, half-sent and stalled connections are closed by the
header and body timeouts; past --max-connections a request gets 503. The timeouts are set short
(1 s) so the tests wait little; the waits below are bounds, not timings."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from conftest import assert_one_line_error, invoke
from serve_helpers import Server, running_server

TIMEOUT = 1.0  # --header-timeout and --body-timeout of the server under test


@pytest.fixture(scope="module")
def server(sample_export, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-conn") / "server.log"
    with running_server(sample_export, "--header-timeout", TIMEOUT, "--body-timeout", TIMEOUT,
                        "--max-connections", 20, log=log) as s:
        yield s


def _connect(server: Server) -> socket.socket:
    host, port = server.address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    return s


def _closed_within(s: socket.socket, bound: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took; a
    socket timeout (30 s) fails the test: the connection was left open."""
    t0, data = time.monotonic(), b""
    while chunk := s.recv(65536):
        data += chunk
    took = time.monotonic() - t0
    assert took < bound, took
    return data, took


def _infer_head(length: int) -> bytes:
    return (f"POST /v2/models/export/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
            f"\r\nContent-Length: {length}\r\n\r\n").encode()


def test_client_disconnect_is_one_info_line_with_499(server):
    before = len(server.log_records())
    for _ in range(50):  # the reported case: 50 disconnects were 50 tracebacks
        with _connect(server) as s:
            s.sendall(_infer_head(100000) + b"hello")
    time.sleep(0.5)  # let the server notice the last one
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=30).status_code == 200
    new = server.log_records()[before:]
    records = [r for r in new if r.get("path") == "/v2/models/export/infer"]
    assert len(records) == 50 and {r["status"] for r in records} == {499}
    assert all(r["level"] == "info" and "disconnected" in r["error"] for r in records)
    assert not [r for r in new if r["level"] == "error" or "traceback" in r]
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert 'code="499"' in metrics and 'code="500"' not in metrics


def test_idle_and_half_sent_connections_are_closed(server):
    with _connect(server) as idle:
        data, took = _closed_within(idle, 10 * TIMEOUT)
        assert data == b"" and took >= TIMEOUT * 0.9
    with _connect(server) as half:
        half.sendall(b"GET /v2 HTTP/1.1\r\nHost: t\r\n")  # headers never finished
        data, _ = _closed_within(half, 10 * TIMEOUT)
        assert data == b""


def test_kept_alive_connection_closes_after_the_idle_time(server):
    with _connect(server) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        data, _ = _closed_within(s, 10 * TIMEOUT)
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b'{"live":true}')


def test_stalled_body_gets_408_and_the_connection_closes(server):
    before = len(server.log_records())
    with _connect(server) as s:
        s.sendall(_infer_head(100) + b"ab")
        data, _ = _closed_within(s, 10 * TIMEOUT)
    assert data.startswith(b"HTTP/1.1 408 ") and b"connection: close" in data.lower()
    assert b"body timeout" in data
    [rec] = [r for r in server.log_records()[before:] if r.get("status") == 408]
    assert rec["level"] == "info"


def test_requests_beyond_the_connection_limit_get_503(server):
    held = [_connect(server) for _ in range(25)]  # more than --max-connections 20
    try:
        r = httpx.get(f"{server.url}/v2/health/live", timeout=30)
        assert r.status_code == 503
    finally:
        for s in held:
            s.close()
    for _ in range(50):  # the held ones are gone: served again
        if httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("still refusing after the connections closed")


@pytest.mark.parametrize("args,needle", [
    (("--header-timeout", "0"), "--header-timeout 0.0 is out of range"),
    (("--body-timeout", "nan"), "--body-timeout nan is out of range"),
    (("--max-connections", "0"), "--max-connections 0 is out of range"),
])
def test_limit_options_are_checked(sample_export, args, needle):
    assert_one_line_error(invoke("serve", sample_export, *args), needle)
