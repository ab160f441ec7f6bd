"""``vitdeploy export``: checkpoint -> Paddle inference model + preprocessing + manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .about import versions
from .artifact import (
    INFERENCE_YML,
    LABELS,
    atomic_output_dir,
    check_output_dir,
    inference_yml,
    read_labels,
    sha256,
    write_inference_yml,
    write_labels,
    write_manifest,
)
from .errors import CheckpointError, ExportError
from .models.deploy import save_deployable
from .models.loader import load_model
from .predictor import softmax as softmax_rows

Progress = Callable[[str], None]
VERIFY_TOLERANCE = 1e-4  # max abs diff between the eager model and the exported program


@dataclass
class ExportResult:
    out_dir: str
    model: str
    num_classes: int
    input_shape: list
    softmax: bool
    files: dict[str, str]
    verify_max_abs_diff: float


def _versions() -> dict[str, str]:
    return versions(("paddlepaddle", "numpy"))  # type: ignore[return-value]


def save_inference_model(model, path_prefix: Path, input_size: int, softmax: bool) -> None:
    """Fold, optional softmax, input ``x`` float32 [None, 3, H, W]: the one builder the Lite
    worker uses too (models/deploy.py), so both artifacts compute the same function."""
    save_deployable(model, path_prefix, input_size, softmax=softmax)


def export_model(model_name: str, weights: str | Path, out: str | Path, *,
                 num_classes: int | None = None, labels: str | Path | None = None,
                 softmax: bool = False, force: bool = False,
                 progress: Progress | None = None) -> ExportResult:
    say = progress or (lambda _msg: None)
    check_output_dir(out, force, inputs=(weights, labels))  # before loading the checkpoint
    weights = Path(weights)
    say(f"loading {weights.name}")
    loaded = load_model(model_name, weights, num_classes)  # validates before anything is written
    cfg, n = loaded.config, loaded.num_classes
    label_list = read_labels(labels, n) if labels else [f"class_{i}" for i in range(n)]
    size = cfg.input_size

    import paddle

    rng = np.random.default_rng(0)
    probe = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    with paddle.no_grad():
        expected = loaded.model(paddle.to_tensor(probe)).numpy()
    if softmax:
        expected = softmax_rows(expected)
    if not np.isfinite(expected).all():
        raise CheckpointError(f"checkpoint {weights} gives non-finite outputs on {cfg.name}")

    with atomic_output_dir(out, force=force, inputs=(weights, labels)) as tmp:
        say("tracing and saving the inference program")
        try:
            save_inference_model(loaded.model, tmp / "inference", size, softmax)
        except Exception as e:
            raise ExportError(f"paddle.jit.save failed for {cfg.name}: {e}") from None
        say("verifying the exported program with Paddle Inference")
        from .runtimes.paddle import PaddleRuntime

        with PaddleRuntime(tmp / "inference.json") as rt:
            got = rt.predict(probe)
        diff = float(np.abs(got - expected).max())
        if not diff <= VERIFY_TOLERANCE:
            raise ExportError(
                f"exported {cfg.name} differs from the eager model by {diff:.3g} "
                f"(> {VERIFY_TOLERANCE}); please report this"
            )
        write_labels(tmp / LABELS, label_list)
        write_inference_yml(tmp / INFERENCE_YML, inference_yml(cfg.name, cfg.preprocess, n, softmax))
        manifest = write_manifest(tmp, {
            "format": "paddle",
            "model": cfg.name,
            "family": cfg.family,
            "variant": loaded.variant,
            "num_classes": n,
            "softmax": softmax,
            "input": {"name": "x", "dtype": "float32", "shape": [None, 3, size, size]},
            "preprocess": cfg.preprocess.to_dict(),
            "source": {"weights": weights.name, "path": str(weights.resolve()),
                       "sha256": sha256(weights)},
            "verify": {"max_abs_diff": diff, "batch": 2},
            "versions": _versions(),
        })
    return ExportResult(str(Path(out)), cfg.name, n, [None, 3, size, size], softmax,
                        manifest["files"], diff)
