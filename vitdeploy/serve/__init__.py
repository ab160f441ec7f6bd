"""``vitdeploy serve``: an online inference server on the Open Inference Protocol (KServe v2, the
protocol Triton and KServe share), with dynamic batching, scaling out on Ray Serve.

- ``protocol.py``: the REST protocol (JSON + Triton's binary tensor and classification extensions)
- ``model.py``: one artifact: its ``Predictor`` in a thread of its own, metadata, input checks
- ``batcher.py``: dynamic batching on the event loop
- ``repository.py``: the served models, batchers and metrics; one request end to end
- ``app.py``: the FastAPI app (routes, errors as ``{"error": ...}``, access log)
- ``server.py``: ``serve()``: checks, then uvicorn (one process) or ``ray_serve.py`` (replicas)

In Python::

    from vitdeploy.serve import model_specs, serve, serve_options
    serve(model_specs(["deit_onnx"]), serve_options(max_batch_size=8), port=8000)

Heavy imports (FastAPI, uvicorn, Ray, the runtimes) happen inside the functions."""

from __future__ import annotations

from typing import Any

from .config import ModelSpec, ServeOptions, model_specs, serve_options


def serve(*args: Any, **kwargs: Any) -> None:
    """``server.serve``: checks, then serves until SIGINT/SIGTERM."""
    from .server import serve as _serve

    return _serve(*args, **kwargs)


__all__ = ["ModelSpec", "ServeOptions", "model_specs", "serve", "serve_options"]
