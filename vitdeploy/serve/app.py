"""The HTTP app: the Open Inference Protocol's REST endpoints on FastAPI, plus ``/metrics``.

The same app runs under uvicorn (one process) and as a Ray Serve replica's ingress; ``load``
builds the ``Repository`` when the app starts (a Ray replica loads its own models), so the app
itself holds nothing unpicklable until then. Every error is ``{"error": "<one line>"}`` with a 4xx
(5xx only for a server fault), never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

# FastAPI resolves the routes' annotations in this module's namespace: imported here, and this
# module is imported only when a server starts (``import vitdeploy`` stays light)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..about import __version__
from .config import ServeOptions
from .http import CLIENT_CLOSED, AccessLog, log, read_body, replica_id
from .protocol import EXTENSIONS, HEADER_LENGTH, ProtocolError
from .repository import Repository

MODEL = "/v2/models/{name}"
VERSION = "/v2/models/{name}/versions/{version}"
# (method, paths, Endpoints method): the Open Inference Protocol's REST surface, plus /metrics
ROUTES = (
    ("GET", ("/v2/health/live",), "live"),
    ("GET", ("/v2/health/ready",), "ready"),
    ("GET", ("/v2",), "server_metadata"),
    ("POST", ("/v2/repository/index",), "repository_index"),
    ("GET", (MODEL, VERSION), "model_metadata"),
    ("GET", (f"{MODEL}/ready", f"{VERSION}/ready"), "model_ready"),
    ("GET", (f"{MODEL}/config", f"{VERSION}/config"), "model_config"),
    ("POST", (f"{MODEL}/infer", f"{VERSION}/infer"), "infer"),
    ("GET", ("/metrics",), "metrics"),
)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Endpoints:
    """The routes over one ``Repository``, which ``load`` builds when the app starts (a Ray
    replica loads its own models), so the app holds nothing unpicklable until then."""

    def __init__(self, load: Callable[[], Repository], options: ServeOptions) -> None:
        self._load, self.options = load, options
        self._repo: Repository | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        repo = await asyncio.to_thread(self._load)
        await repo.start()
        self._repo = repo
        log.info("ready", extra={"models": list(repo.models), "replica": replica_id(),
                                 "max_batch_size": self.options.max_batch_size,
                                 "max_queue_delay_ms": self.options.max_queue_delay_ms})
        try:
            yield
        except asyncio.CancelledError:  # a second Ctrl-C / SIGTERM: uvicorn forces the exit
            log.warning("forced stop: requests still queued are dropped")
            repo.ready = False
            return
        try:  # after the server has let in-flight requests finish
            await repo.stop()
        except asyncio.CancelledError:
            log.warning("forced stop: requests still queued are dropped")

    def repo(self) -> Repository:
        if self._repo is None:
            raise ProtocolError("the server is starting; no model is loaded yet", 503)
        return self._repo

    async def live(self) -> Response:
        return JSONResponse({"live": True})

    async def ready(self) -> Response:
        if self._repo is None or not self._repo.ready:
            return error(503, "not ready")
        return JSONResponse({"ready": True})

    async def server_metadata(self) -> Response:
        return JSONResponse({"name": "vitdeploy", "version": __version__, "extensions": EXTENSIONS})

    async def repository_index(self) -> Response:
        return JSONResponse(self.repo().index())

    async def model_metadata(self, name: str, version: str | None = None) -> Response:
        return JSONResponse(self.repo().model(name, version).metadata())

    async def model_ready(self, name: str, version: str | None = None) -> Response:
        r = self.repo()
        r.model(name, version)
        if not r.ready:
            return error(503, f"model '{name}' is not ready")
        return JSONResponse({"name": name, "ready": True})

    async def model_config(self, name: str, version: str | None = None) -> Response:
        return JSONResponse(self.repo().model(name, version).config())

    async def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        r = self.repo()
        try:
            body = await read_body(request, self.options.max_request_bytes,
                                   self.options.body_timeout_s)
        except ProtocolError as e:
            r.count_refused(name, e.status)
            raise
        out, header_length = await r.infer(name, version, body, request.headers.get(HEADER_LENGTH))
        if header_length is None:
            return Response(out, media_type="application/json")
        return Response(out, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(header_length)})

    async def metrics(self) -> Response:
        if self._repo is None or self._repo.metrics is None:
            return error(503, "not ready")
        data, content_type = self._repo.metrics.render()
        return Response(data, media_type=content_type)


async def _protocol_error(_request: Request, e: ProtocolError) -> JSONResponse:
    response = error(e.status, str(e))
    if e.status in (408, CLIENT_CLOSED):  # the rest of that body is not worth waiting for
        response.headers["connection"] = "close"
    return response


async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
    if e.status_code == 404:
        return error(404, f"no endpoint {request.method} {request.url.path}; the server speaks "
                          "the Open Inference Protocol: /v2, /v2/health/ready, /v2/models/NAME, "
                          "/v2/models/NAME/infer, /metrics")
    if e.status_code == 405:
        return error(405, f"{request.method} is not allowed on {request.url.path}")
    return error(e.status_code, str(e.detail))


async def _validation_error(_request: Request, e: RequestValidationError) -> JSONResponse:
    return error(400, f"bad request: {e.errors()[0].get('msg', 'invalid') if e.errors() else e}")


def create_app(load: Callable[[], Repository], options: ServeOptions) -> Any:
    """The ASGI app. ``load`` returns the models to serve; it runs in a thread at startup."""
    endpoints = Endpoints(load, options)
    app = FastAPI(lifespan=endpoints.lifespan, title="vitdeploy", version=__version__,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(AccessLog)
    app.add_exception_handler(ProtocolError, _protocol_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for method, paths, name in ROUTES:
        for path in paths:
            app.add_api_route(path, getattr(endpoints, name), methods=[method])
    return app
