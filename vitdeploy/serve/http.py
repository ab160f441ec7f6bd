"""HTTP plumbing under the app: the access log (one JSON line per request, and the answering
replica's header on every response) and reading a request body within its size and time limits."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request

from .protocol import ProtocolError

log = logging.getLogger("vitdeploy.serve")
REPLICA_HEADER = "x-vitdeploy-replica"
CLIENT_CLOSED = 499  # nginx's code for "client closed request": not a server error


def replica_id() -> str:
    """Which process answered: host and pid (each Ray Serve replica is a process of its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class AccessLog:
    """Plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): one JSON log line per
    request, and the replica header on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, refusal = time.perf_counter(), 500, b""
        replica = replica_id().encode()

        async def send_with_header(message: dict) -> None:
            nonlocal status, refusal
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REPLICA_HEADER.encode(), replica)]
            elif status >= 400 and len(refusal) < 1024:  # the error line, for the log
                refusal += message.get("body", b"")[:1024]
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            client = scope.get("client") or ("", 0)
            extra = {"method": scope["method"], "path": scope["path"], "status": status,
                     "client": f"{client[0]}:{client[1]}",
                     "ms": round((time.perf_counter() - start) * 1000, 3)}
            if refusal:
                try:
                    extra["error"] = json.loads(refusal)["error"]
                except (ValueError, KeyError, TypeError):
                    extra["error"] = refusal[:300].decode(errors="replace")
            log.info("request", extra=extra)


async def read_body(request: Request, limit: int, idle_timeout: float = 30.0) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes; a body
    that stalls for ``idle_timeout`` seconds is refused (408, connection closed); a client that
    disconnects mid-body is a 499 (logged as one line, like any refusal)."""
    too_big = f"bytes; the limit is {limit} (--max-request-mb)"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ProtocolError(f"bad Content-Length {declared!r}")
        if int(declared) > limit:
            raise ProtocolError(f"the request body is {declared} {too_big}", 413)
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise ProtocolError("compressed request bodies are not accepted; send them uncompressed", 415)
    chunks, total = [], 0
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), idle_timeout)
        except StopAsyncIteration:
            return b"".join(chunks)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no request body received for {idle_timeout:g} s (body timeout); "
                                "send the whole body as its Content-Length says", 408) from None
        except ClientDisconnect:
            raise ProtocolError("the client disconnected before sending the whole request body",
                                CLIENT_CLOSED) from None
        total += len(chunk)
        if total > limit:
            raise ProtocolError(f"the request body is over {limit} {too_big}", 413)
        chunks.append(chunk)
