"""``serve``: one process (uvicorn), or Ray Serve replicas (``replicas > 1`` or ``ray_address``).

Everything a user can get wrong is refused before the server starts, as one ``VitdeployError``:
options out of range, an unknown runtime, an artifact failing its manifest, a port in use. The
server then runs until SIGINT or SIGTERM, lets in-flight requests finish and returns."""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import OptionError, VitdeployError
from ..options import positive_int
from .config import ModelSpec, ServeOptions, check_port
from .listen import Started, bind, url_of

log = logging.getLogger("vitdeploy.serve")


def preflight(specs: Sequence[ModelSpec], max_batch_size: int = 1) -> None:
    """What loading would refuse, checked without loading (for Ray: before any replica starts):
    manifests, inference.yml, a runtime that can read each artifact, and memory for a full
    batch of each model."""
    from ..artifact import read_artifact_info, verify_artifact
    from ..precision import check_requested
    from ..predictor import resolve_runtime
    from ..resources import check_batch_memory
    from ..runtimes import get_runtime

    for spec in specs:
        if spec.runtime is not None:
            get_runtime(spec.runtime)
        if spec.verify:
            verify_artifact(spec.directory)
        info = read_artifact_info(spec.directory, model=spec.model)
        check_batch_memory(max_batch_size, info.preprocess.crop_size, "--max-batch-size")
        cls, _path = resolve_runtime(info.directory, spec.runtime)
        check_requested(cls.name, spec.precision, cls.precision_choices)


def serve(specs: Sequence[ModelSpec], options: ServeOptions, *, host: str = "127.0.0.1",
          port: int = 8000, replicas: int = 1, ray_address: str | None = None,
          on_ready: Callable[[Started], None] | None = None, log_level: str = "info") -> None:
    """Serve ``specs`` until SIGINT/SIGTERM. ``on_ready`` is called once the server answers;
    ``log_level`` is that of the Ray replicas' logs (this process's logging is the caller's)."""
    check_port(port)
    positive_int(replicas, "--replicas")
    if not specs:
        raise OptionError("no artifact to serve")
    # manifests hashed and runtimes resolved once, before anything starts
    preflight(specs, options.max_batch_size)
    if ray_address is not None or replicas > 1:
        from .ray_serve import serve_on_ray

        return serve_on_ray(list(specs), options, host=host, port=port, replicas=replicas,
                            address=ray_address, on_ready=on_ready, log_level=log_level)
    sock = bind(host, port)
    try:
        from .repository import Repository

        repo = Repository.load([dataclasses.replace(s, verify=False) for s in specs], options)
    except BaseException:
        sock.close()
        raise
    try:
        _run_uvicorn(repo, options, sock, on_ready)
    finally:
        sock.close()


def _run_uvicorn(repo: Any, options: ServeOptions, sock: socket.socket,
                 on_ready: Callable[[Started], None] | None) -> None:
    try:
        import uvicorn
    except ImportError:
        raise VitdeployError("uvicorn is not installed: pip install 'uvicorn[standard]' fastapi") from None
    from .app import create_app
    from .connections import uvicorn_limits

    app = create_app(lambda: repo, options)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none",
                            timeout_graceful_shutdown=options.graceful_timeout_s,
                            **uvicorn_limits(options.header_timeout_s, options.header_timeout_s,
                                             options.max_connections))
    started = Started(url_of(sock), list(repo.models))

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready(started)

    server = Server(config)
    stops: list[int] = []
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for whoever
    # handles it next: that is us, and a requested stop is a normal end (exit 0), not an error.
    previous = {s: signal.signal(s, lambda signum, _frame: stops.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's way out when the app's startup failed (logged above)
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not server.started:
        raise VitdeployError("the server did not start (its log lines above say why)")
    log.info("server stopped", extra={"signal": signal.Signals(stops[0]).name if stops else None})
