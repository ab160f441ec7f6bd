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
import time
from typing import Any

from ..errors import OptionError, VitdeployError, first_line
from ..ray_local import LocalRay, prepare_environment
from .config import ModelSpec, ServeOptions
from .listen import Started, bind

log = logging.getLogger("vitdeploy.serve")
APP_NAME = "vitdeploy"
LOCAL_OBJECT_STORE = 128 * 2**20  # replicas exchange only HTTP bodies: keep the object store small
# How long a stop waits for the replicas' in-flight requests (they take milliseconds); then the
# local Ray instance is stopped regardless: a stop takes ~10 s at most.
SHUTDOWN_S = 8.0
REPLICA_DRAIN_S = 3.0


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


class Stops:
    """SIGINT/SIGTERM for the whole life of a Ray server (start, serving, shutdown), so none
    reaches Ray's own handlers in this process (they print a stack for SIGTERM). The first asks
    for a graceful stop, a second one for a forced stop."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.event = threading.Event()
        self.forced = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stops:
        self._previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def reclaim(self) -> None:
        """After ``ray.init``: its core worker installs a C++ handler for SIGTERM (it prints a
        stack and aborts the process); ours again."""
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._handler)

    def __exit__(self, *exc: object) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    def _handler(self, signum: int, _frame: Any) -> None:
        self.got.append(signal.Signals(signum).name)
        (self.forced if self.event.is_set() else self.event).set()

    def wait(self) -> str:
        while not self.event.wait(0.5):  # a timed wait, so signals are handled promptly
            pass
        return self.got[0]

    def check(self) -> None:
        """A stop asked for while the server was still starting: nothing to serve any more."""
        if self.event.is_set():
            raise KeyboardInterrupt


def _bounded(fn: Any, seconds: float, stops: Stops) -> bool:
    """``fn()`` in a thread, given up after ``seconds`` or at a second signal (False); what it
    leaves behind is stopped with the Ray instance."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception as e:  # the cluster is torn down next either way
            log.debug("shutdown step failed", extra={"error": first_line(e)})
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="vitdeploy-ray-stop").start()
    deadline = time.monotonic() + seconds
    while not done.wait(0.1) and not stops.forced.is_set() and time.monotonic() < deadline:
        pass
    return done.is_set()


def _init_kwargs(replicas: int, cpus: int) -> dict[str, Any]:
    return {"num_cpus": max(os.cpu_count() or 1, replicas * cpus),
            "object_store_memory": LOCAL_OBJECT_STORE, "include_dashboard": False,
            "log_to_driver": False}


def serve_on_ray(specs: list[ModelSpec], options: ServeOptions, *, host: str, port: int,
                 replicas: int, address: str | None, on_ready: Any = None,
                 log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM on a local Ray instance (its own session: see ray_local.py) or
    on the cluster at ``address``. The stop is bounded: replicas get SHUTDOWN_S to finish their
    in-flight requests, then the local instance is stopped, and nothing of it is left."""
    local = address is None
    if local:  # loopback, a token of this run's own, this vitdeploy on the replicas' path
        prepare_environment()
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
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
    cpus = max(s.threads or 1 for s in specs)
    cluster = LocalRay(_init_kwargs(replicas, cpus)) if local else None
    _quiet_ray_serve_logs()
    with Stops() as stops:
        started = time.monotonic()
        try:
            try:
                target = cluster.start() if cluster is not None else address
                stops.check()
                ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
                stops.reclaim()
            except VitdeployError:
                raise
            except Exception as e:
                raise VitdeployError(f"Ray could not start{f' at {address}' if address else ''}: "
                                     f"{first_line(e)}") from None
            stops.check()
            _run(serve, specs, options, host, port, replicas, cpus, log_level, local)
            stops.check()
            http_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            log.info("ready", extra={"models": [s.name for s in specs], "replicas": replicas,
                                     "ray": address or "local", "port": port,
                                     "max_batch_size": options.max_batch_size})
            if on_ready is not None:
                on_ready(Started(f"http://{http_host}:{port}", [s.name for s in specs], replicas,
                                 address))
            stops.wait()
            started = time.monotonic()
        except KeyboardInterrupt:  # stopped while starting
            pass
        finally:
            _stop(ray, serve, cluster, stops)
        log.info("server stopped", extra={"signal": stops.got[0] if stops.got else None,
                                          "stop_s": round(time.monotonic() - started, 2)})


def _quiet_ray_serve_logs() -> None:
    """Ray Serve's driver-side messages as our JSON lines (at warning and above), like
    everything else on stderr."""
    ours = logging.getLogger("vitdeploy.serve").handlers
    if ours:
        serve_log = logging.getLogger("ray.serve")
        serve_log.handlers[:] = ours
        serve_log.propagate = False
        serve_log.setLevel(logging.WARNING)


def _run(serve: Any, specs: list[ModelSpec], options: ServeOptions, host: str, port: int,
         replicas: int, cpus: int, log_level: str, local: bool) -> None:
    http: dict[str, Any] = {"host": host, "port": port}
    if local:  # Ray's proxy owns the connections: its keep-alive is ours (--header-timeout)
        http["keep_alive_timeout_s"] = int(max(1, options.header_timeout_s))
    serve.start(http_options=http)
    _quiet_ray_serve_logs()
    deployment = serve.deployment(
        name=APP_NAME, num_replicas=replicas,
        # enough requests per replica in flight for its batcher to fill a batch, and more queued
        max_ongoing_requests=max(16, 4 * options.max_batch_size),
        ray_actor_options={"num_cpus": cpus},
        # a stopping replica waits for its in-flight requests (milliseconds each), checking
        # every half second, and is stopped after REPLICA_DRAIN_S at most
        graceful_shutdown_wait_loop_s=0.5,
        graceful_shutdown_timeout_s=min(options.graceful_timeout_s, REPLICA_DRAIN_S),
    )(serve.ingress()(Replica))
    try:
        serve.run(deployment.bind(specs, options, log_level), name=APP_NAME, route_prefix="/")
    except Exception as e:
        raise VitdeployError(f"the Ray Serve deployment did not start: {first_line(e)}") from None


def _stop(ray: Any, serve: Any, cluster: Any, stops: Stops) -> None:
    """Replicas finish their in-flight requests (bounded), then the driver disconnects and the
    local instance stops; on a shared cluster only our application is removed. A driver whose
    Serve shutdown is still running must not disconnect under it (Ray aborts the process): the
    local instance is stopped beneath it instead."""
    if ray.is_initialized():
        step = serve.shutdown if cluster is not None else (lambda: serve.delete(APP_NAME))
        if _bounded(step, SHUTDOWN_S, stops):
            _bounded(ray.shutdown, 5.0, stops)
        else:
            why = "a second signal" if stops.forced.is_set() else f"{SHUTDOWN_S:g} s passed"
            log.warning("forced stop: replicas did not finish their requests", extra={"why": why})
    if cluster is not None:
        cluster.stop()
