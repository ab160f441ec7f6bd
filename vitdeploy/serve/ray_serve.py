"""Scale-out on Ray Serve: the same app (``app.create_app``) as the ingress of a deployment with N
replicas, on a local Ray instance (``--replicas N``) or an existing cluster (``--ray ADDRESS``).

Each replica is a process of its own that builds the app and loads the models itself (the app
builder runs there), so runtimes of different replicas never share a thread pool. Batching stays
ours, per replica (the same ``DynamicBatcher``, hence the same answers as one process), rather than
``@serve.batch``; Ray's proxy spreads requests over the replicas."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from ..errors import OptionError, VitdeployError, first_line
from .config import ModelSpec, ServeOptions
from .server import Started, bind

log = logging.getLogger("vitdeploy.serve")
APP_NAME = "vitdeploy"
LOCAL_OBJECT_STORE = 128 * 2**20  # replicas exchange only HTTP bodies: keep the object store small


def build_app(specs: list[ModelSpec], options: ServeOptions, log_level: str) -> Any:
    """Runs in each replica: JSON logs to the replica's stderr (Ray's log files), then the app,
    whose startup loads the models."""
    import sys

    from .app import create_app
    from .logs import configure_logging
    from .repository import Repository

    configure_logging(log_level, sys.stderr)
    return create_app(functools.partial(Repository.load, specs, options), options)


class Replica:
    """The deployment's class: Ray Serve calls ``__serve_build_asgi_app__`` in each replica after
    the constructor (its late-bound ingress), so the app and the models are built there."""

    def __init__(self, specs: list[ModelSpec], options: ServeOptions, log_level: str) -> None:
        self._args = (specs, options, log_level)

    def __serve_build_asgi_app__(self) -> Any:
        return build_app(*self._args)


def _wait_for_stop() -> str:
    stop = threading.Event()
    got: list[str] = []

    def handler(signum: int, _frame: Any) -> None:
        got.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):  # a timed wait, so signals are handled promptly
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return got[0]


def serve_on_ray(specs: list[ModelSpec], options: ServeOptions, *, host: str, port: int,
                 replicas: int, address: str | None, on_ready: Any = None,
                 log_level: str = "info") -> None:
    local = address is None
    if local:  # a local instance stays on loopback (Ray's switch for single-machine use; read
        # when ray is imported), rather than its processes talking over the machine's network IP
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        from ray import serve
    except ImportError:
        raise VitdeployError("--replicas and --ray run on Ray Serve, which is not installed: "
                             "pip install 'ray[serve]'") from None
    from ..runtimes import physical_cores

    if not local and port == 0:
        raise OptionError("--port 0 does not apply to --ray: the cluster's Serve proxies listen on "
                          "a fixed port; choose one (e.g. --port 8000)")
    if local:  # a port in use is one line now, not a proxy that fails inside Ray
        sock = bind(host, port)
        port = sock.getsockname()[1]  # port 0: a free one, handed to Ray's proxy
        sock.close()
        threads = max(1, physical_cores() // replicas)
        specs = [dataclasses.replace(s, threads=s.threads or threads) for s in specs]
        # the replicas import this very vitdeploy (a worktree or checkout), not another install
        root = str(Path(__file__).resolve().parents[2])
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    cpus = max(s.threads or 1 for s in specs)
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                            "logging_level": logging.WARNING}
    if local:
        init.update(num_cpus=max(os.cpu_count() or 1, replicas * cpus),
                    object_store_memory=LOCAL_OBJECT_STORE)
    try:
        ray.init(address=address, **init)
    except Exception as e:
        raise VitdeployError(f"Ray could not start{f' at {address}' if address else ''}: "
                             f"{first_line(e)}") from None
    try:
        serve.start(http_options={"host": host, "port": port})
        ours = logging.getLogger("vitdeploy.serve").handlers
        if ours:  # Ray Serve's driver-side messages as JSON lines too, like everything else
            serve_log = logging.getLogger("ray.serve")
            serve_log.handlers[:] = ours
            serve_log.propagate = False
        deployment = serve.deployment(
            name=APP_NAME, num_replicas=replicas,
            # enough requests per replica in flight for its batcher to fill a batch, and more queued
            max_ongoing_requests=max(16, 4 * options.max_batch_size),
            ray_actor_options={"num_cpus": cpus},
            graceful_shutdown_timeout_s=options.graceful_timeout_s,
        )(serve.ingress()(Replica))
        try:
            serve.run(deployment.bind(specs, options, log_level), name=APP_NAME, route_prefix="/")
        except Exception as e:
            raise VitdeployError(f"the Ray Serve deployment did not start: {first_line(e)}") from None
        http_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if on_ready is not None:
            on_ready(Started(f"http://{http_host}:{port}", [s.name for s in specs], replicas, address))
        why = _wait_for_stop()
        log.info("stopping", extra={"signal": why})
    finally:
        try:  # replicas finish in-flight requests first (graceful_shutdown_timeout_s)
            if local:
                serve.shutdown()
            else:  # a shared cluster: remove our application only, not Serve and its other apps
                serve.delete(APP_NAME)
        finally:
            ray.shutdown()
