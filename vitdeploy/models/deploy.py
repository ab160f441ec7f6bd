"""The deployable program, built one way for every exporter.

``vitdeploy export`` (Paddle 3) and the Lite worker (Paddle 2.6, Python 3.10) both save through
``save_deployable``, so an export's options (folding, ``--softmax``, the input spec) cannot drift
between the Paddle artifact and the ``.nb`` re-exported from the same checkpoint. Keep this module
light: the Lite worker imports it, and has no yaml, cv2 or onnx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .loader import fold_for_export

INPUT_NAME = "x"


def deployable_layer(model: Any, softmax: bool = False) -> Any:
    """``model`` with its export-time folding applied, wrapped in a softmax if asked; eval mode."""
    import paddle

    class _WithSoftmax(paddle.nn.Layer):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return paddle.nn.functional.softmax(self.inner(x), axis=-1)

    fold_for_export(model)  # idempotent: every fold is recomputed from the unfolded weights
    layer = _WithSoftmax(model) if softmax else model
    layer.eval()
    return layer


def save_deployable(model: Any, path_prefix: str | Path, input_size: int, *,
                    softmax: bool = False) -> None:
    """Fold, optionally append softmax, and ``paddle.jit.save`` with input ``x`` float32
    [None, 3, H, W] (dynamic batch). Paddle 3 writes ``.json``, Paddle 2.6 the legacy
    ``.pdmodel``; both take ``full_graph=True`` (AST tracing: one whole program, no SOT
    fallback that could split the graph)."""
    import paddle

    layer = deployable_layer(model, softmax)
    spec = [paddle.static.InputSpec([None, 3, input_size, input_size], "float32", INPUT_NAME)]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(path_prefix))
