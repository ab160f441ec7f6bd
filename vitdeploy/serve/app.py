"""The HTTP app: the Open Inference Protocol's REST endpoints on FastAPI, plus ``/metrics``.

The same app runs under uvicorn (one process) and as a Ray Serve replica's ingress; ``load``
builds the ``Repository`` when the app starts (a Ray replica loads its own models), so the app
itself holds nothing unpicklable until then. Every error is ``{"error": "<one line>"}`` with a 4xx
(5xx only for a server fault), never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

# FastAPI resolves the routes' annotations in this module's namespace: imported here, and this
# module is imported only when a server starts (``import vitdeploy`` stays light)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..about import __version__
from .config import ServeOptions
from .protocol import EXTENSIONS, HEADER_LENGTH, ProtocolError
from .repository import Repository

log = logging.getLogger("vitdeploy.serve")
REPLICA_HEADER = "x-vitdeploy-replica"


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


CLIENT_CLOSED = 499  # nginx's code for "client closed request": not a server error


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


def create_app(load: Callable[[], Repository], options: ServeOptions) -> Any:
    """The ASGI app. ``load`` returns the models to serve; it runs in a thread at startup."""
    holder: dict[str, Repository] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        repo = await asyncio.to_thread(load)
        await repo.start()
        holder["repo"] = repo
        log.info("ready", extra={"models": list(repo.models), "replica": replica_id(),
                                 "max_batch_size": options.max_batch_size,
                                 "max_queue_delay_ms": options.max_queue_delay_ms})
        try:
            yield
        except asyncio.CancelledError:  # a second Ctrl-C / SIGTERM: uvicorn forces the exit
            log.warning("forced stop: requests still queued are dropped")
            repo.ready = False
            return
        # after the server has let in-flight requests finish
        try:
            await repo.stop()
        except asyncio.CancelledError:
            log.warning("forced stop: requests still queued are dropped")

    app = FastAPI(lifespan=lifespan, title="vitdeploy", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.add_middleware(AccessLog)

    def repo() -> Repository:
        if "repo" not in holder:
            raise ProtocolError("the server is starting; no model is loaded yet", 503)
        return holder["repo"]

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(ProtocolError)
    async def _protocol_error(_request: Request, e: ProtocolError) -> JSONResponse:
        response = error(e.status, str(e))
        if e.status in (408, CLIENT_CLOSED):  # the rest of that body is not worth waiting for
            response.headers["connection"] = "close"
        return response

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        if e.status_code == 404:
            return error(404, f"no endpoint {request.method} {request.url.path}; the server speaks "
                              "the Open Inference Protocol: /v2, /v2/health/ready, /v2/models/NAME, "
                              "/v2/models/NAME/infer, /metrics")
        if e.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}")
        return error(e.status_code, str(e.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, e: RequestValidationError) -> JSONResponse:
        return error(400, f"bad request: {e.errors()[0].get('msg', 'invalid') if e.errors() else e}")

    @app.get("/v2/health/live")
    async def live() -> Response:
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        r = holder.get("repo")
        if r is None or not r.ready:
            return error(503, "not ready")
        return JSONResponse({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> Response:
        return JSONResponse({"name": "vitdeploy", "version": __version__, "extensions": EXTENSIONS})

    @app.post("/v2/repository/index")
    async def repository_index() -> Response:
        return JSONResponse(repo().index())

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        return JSONResponse(repo().model(name, version).metadata())

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        r = repo()
        r.model(name, version)
        if not r.ready:
            return error(503, f"model '{name}' is not ready")
        return JSONResponse({"name": name, "ready": True})

    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def model_config(name: str, version: str | None = None) -> Response:
        return JSONResponse(repo().model(name, version).config())

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        r = repo()
        try:
            body = await read_body(request, options.max_request_bytes, options.body_timeout_s)
        except ProtocolError as e:
            r.count_refused(name, e.status)
            raise
        out, header_length = await r.infer(name, version, body, request.headers.get(HEADER_LENGTH))
        if header_length is None:
            return Response(out, media_type="application/json")
        return Response(out, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(header_length)})

    @app.get("/metrics")
    async def metrics() -> Response:
        r = holder.get("repo")
        if r is None or r.metrics is None:
            return error(503, "not ready")
        data, content_type = r.metrics.render()
        return Response(data, media_type=content_type)

    return app
