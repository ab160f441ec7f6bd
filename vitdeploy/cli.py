"""The ``vitdeploy`` command line: parse, call one library function, render."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ logging would pollute --json output
warnings.filterwarnings("ignore", message=".*ccache.*")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from . import __version__  # noqa: E402
from .errors import VitdeployError  # noqa: E402

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Deploy PaddlePaddle ViT / DeiT / LeViT classifiers: export, convert, predict.",
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Library errors become one line on stderr and exit 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except VitdeployError as e:
            _fail(str(e))
        except KeyboardInterrupt:
            _fail("interrupted; nothing was written", 130)
        except MemoryError:
            _fail("out of memory; try a smaller batch or model")
        except Exception as e:  # an internal error still gets one line
            if os.environ.get("VITDEPLOY_DEBUG"):
                raise
            _fail(f"internal error: {type(e).__name__}: {e} (set VITDEPLOY_DEBUG=1 for a traceback)")

    return wrapper


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _version(value: bool) -> None:
    if value:
        out.print(f"vitdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    pass


@app.command()
@handle_errors
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and CI."),
           all_models: bool = typer.Option(False, "--all", help="Include our own sample models.")):
    """List the supported architectures with params, FLOPs and input size."""
    from .zoo import model_table

    rows = model_table(include_samples=all_models)
    if as_json:
        return _print_json([asdict(r) for r in rows])
    table = Table(title=f"{len(rows)} models")
    for col in ("name", "family", "params (M)", "FLOPs (G)", "input", "resize/crop", "mean/std"):
        table.add_column(col, justify="right" if col[0] in "pFi" else "left")
    for r in rows:
        table.add_row(r.name, r.family, f"{r.params_m:.2f}", f"{r.flops_g:.2f}",
                      str(r.input_size), f"{r.resize_short}/{r.input_size} {r.interpolation}",
                      r.normalize)
    out.print(table)


@app.command()
@handle_errors
def export(
    model: str = typer.Argument(..., help="Architecture name, e.g. DeiT_tiny_patch16_224."),
    weights: Path = typer.Option(..., "--weights", "-w", help="Checkpoint (.pdparams)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", min=1,
                                              help="Classes (default: read from the head)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file, one per line."),
    softmax: bool = typer.Option(False, "--softmax", help="Append softmax to the graph."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Export a checkpoint to the Paddle inference format (inference.json + .pdiparams)."""
    from .export import export_model

    with err.status("exporting") as status:
        result = export_model(model, weights, out_dir, num_classes=num_classes, labels=labels,
                              softmax=softmax, force=force,
                              progress=lambda m: status.update(f"{model}: {m}"))
    if as_json:
        return _print_json(asdict(result))
    out.print(f"[green]exported[/] {result.model} ({result.num_classes} classes) to "
              f"{result.out_dir}; exported program matches the checkpoint "
              f"(max abs diff {result.verify_max_abs_diff:.2e})")
    for name in [*result.files, "manifest.json"]:
        out.print(f"  {name}")


@app.command()
@handle_errors
def predict(
    artifact: Path = typer.Argument(..., help="Artifact directory (from export or convert)."),
    images: list[Path] = typer.Argument(..., help="Image files or directories."),
    k: int = typer.Option(5, "--topk", "-k", min=1, help="Classes to show per image."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r",
                                          help="Runtime (default: from the directory)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per inference call."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Classify images with an exported model."""
    from .predictor import Predictor

    with Predictor(artifact, runtime=runtime) as pred:
        results = pred.predict_images(images, topk_k=k, batch_size=batch_size)
    if as_json:
        return _print_json([r.to_dict() for r in results])
    table = Table(title=f"{len(results)} images ({pred.runtime.name})")
    table.add_column("image")
    table.add_column("top-1")
    table.add_column("score", justify="right")
    table.add_column(f"top-{k}")
    for r in results:
        best = r.top[0]
        name = best.label if best.label == str(best.class_id) else f"{best.label} ({best.class_id})"
        table.add_row(r.image, name, f"{best.score:.4f}",
                      ", ".join(t.label for t in r.top))
    out.print(table)


@app.command("eval")
@handle_errors
def eval_cmd(
    artifact: Path = typer.Argument(..., help="Artifact directory."),
    folder: Path = typer.Argument(..., help="ImageNet-style folder: one sub-folder per class."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime name."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1", min=0.0, max=1.0,
                                             help="Exit 2 when top-1 is below this."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Measure top-1 / top-5 accuracy on a labelled image folder."""
    from .evaluate import evaluate
    from .predictor import Predictor

    with Predictor(artifact, runtime=runtime) as pred:
        with err.status(f"evaluating on {folder}"):
            result = evaluate(pred, folder)
    passed = min_top1 is None or result.top1 >= min_top1
    if as_json:
        _print_json({**asdict(result), "min_top1": min_top1, "passed": passed})
    else:
        out.print(f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  on {result.images} images "
                  f"({result.runtime})")
    if not passed:
        err.print(f"top-1 {result.top1:.4f} is below --min-top1 {min_top1}")
        raise typer.Exit(2)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
