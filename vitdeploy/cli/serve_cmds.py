"""``vitdeploy serve``: an online inference server on the Open Inference Protocol."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import typer

from .base import (
    MaxPixels,
    ModelName,
    NoVerify,
    Precision,
    RuntimeName,
    app,
    handle_errors,
    image_options,
)

if TYPE_CHECKING:
    from ..serve.listen import Started


def _announce(started: Started) -> None:
    """The one line a person (or a test) waits for; flushed, since stdout may be a pipe."""
    where = f"{started.replicas} Ray Serve replicas" if started.replicas > 1 or started.ray_address \
        else "1 process"
    if started.ray_address:
        where += f" on the Ray cluster at {started.ray_address}"
    sys.stdout.write(f"serving {', '.join(started.models)} at {started.url} ({where}; Open Inference "
                     f"Protocol under /v2, metrics at /metrics); Ctrl-C stops\n")
    sys.stdout.flush()


@app.command()
@handle_errors
def serve(
    artifacts: list[str] = typer.Argument(
        ..., help="Artifact directories to serve, each under its folder's name; NAME=DIR names one."),
    runtime: RuntimeName = None,
    precision: Precision = None,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every "
                             "interface; mind that the server has no authentication)."),
    port: int = typer.Option(8000, "--port", help="TCP port (0: any free port, printed)."),
    max_batch_size: int = typer.Option(
        8, "--max-batch-size", help="Dynamic batching: at most this many rows per model run "
        "(1: no batching)."),
    max_queue_delay_ms: float = typer.Option(
        2.0, "--max-queue-delay-ms", help="Dynamic batching: how long the oldest queued request may "
        "wait for others (0: batch only what is already queued)."),
    replicas: int = typer.Option(1, "--replicas", help="Run N replicas as a Ray Serve deployment "
                                 "(needs ray[serve])."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray", help="Serve on this Ray cluster (e.g. ray://head:10001 or auto) instead of "
        "one local process."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads per runtime (default: "
                                          "physical cores; with --replicas, shared among them)."),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb",
                                         help="Refuse request bodies larger than this (413)."),
    header_timeout: float = typer.Option(
        15.0, "--header-timeout", help="Close a connection whose request headers have not "
        "arrived this many seconds after it opened or after its previous response (also the "
        "keep-alive idle time)."),
    body_timeout: float = typer.Option(
        30.0, "--body-timeout", help="Answer 408 and close when a request body stalls this many "
        "seconds between reads."),
    max_connections: int = typer.Option(
        512, "--max-connections", help="Open connections beyond which new requests get 503."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error "
                                  "(JSON lines on stderr)."),
    model: ModelName = None,
    no_verify: NoVerify = False,
    max_pixels: MaxPixels = None,
):
    """Serve artifacts over HTTP on the Open Inference Protocol (KServe v2 / Triton), with dynamic
    batching; --replicas / --ray scale out on Ray Serve."""
    from ..serve.config import check_port, model_specs, serve_options
    from ..serve.logs import configure_logging
    from ..serve.server import serve as run_server

    check_port(port)
    options = serve_options(max_batch_size, max_queue_delay_ms, max_request_mb, max_pixels,
                            header_timeout, body_timeout, max_connections)
    image_options("skip", max_pixels)  # --max-image-pixels also becomes OpenCV's own limit
    specs = model_specs(artifacts, runtime=runtime, precision=precision, threads=threads,
                        model=model, verify=not no_verify)
    configure_logging(log_level)
    run_server(specs, options, host=host, port=port, replicas=replicas, ray_address=ray_address,
               on_ready=_announce, log_level=log_level)
