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
from typer._click import exceptions as click  # noqa: E402  (typer >= 0.29 vendors click)
from typer.core import TyperGroup  # noqa: E402

from . import __version__  # noqa: E402
from .errors import VitdeployError  # noqa: E402

# Wide tables when piped (CI logs); a terminal keeps its own width.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)
NO_VERIFY_HELP = "Skip checking the artifact's files against its manifest.json sha256 digests."
MODEL_HELP = ("Architecture of a bare PaddleClas export without inference.yml: its PaddleClas "
              "preprocessing is used.")



class OneLineErrors(TyperGroup):
    """Usage mistakes (a missing argument, a value out of range) are bad input like any other:
    one line on stderr and exit 1, never click's boxed usage text with its exit 2 (which our
    exit codes reserve for a check not met)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except click.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else str(e))
            code = 0
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            err.print(f"error: {e.format_message()}{where}", markup=False, highlight=False,
                      soft_wrap=True)
            code = 1
        except click.ClickException as e:
            err.print(f"error: {e.format_message()}", markup=False, highlight=False, soft_wrap=True)
            code = 1
        except typer.Abort:
            err.print("error: aborted; nothing was written", markup=False, highlight=False)
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Deploy PaddlePaddle ViT / DeiT / LeViT classifiers: export, convert, predict.",
)


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
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version,
                                                is_eager=True, help="Print the version and exit.")
         ) -> None:
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
def convert(
    src: Path = typer.Argument(..., help="Export directory (vitdeploy's or PaddleClas's)."),
    to: str = typer.Option(..., "--to", help="Target: onnx, openvino or lite."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    opset: Optional[int] = typer.Option(None, "--opset", help="onnx/openvino: ONNX opset (default 17)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="onnx: fp32 (default) or fp16 (fp16 weights and compute, fp32 "
        "I/O); openvino: fp32 or fp16 (weights compressed)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Architecture whose preprocessing to record, for a PaddleClas "
        "directory without inference.yml."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file (with --model)."),
    arch: Optional[str] = typer.Option(None, "--arch",
                                       help="Lite: arm8 (default), armv7, x86 or opencl."),
    quantize: Optional[str] = typer.Option(None, "--quantize",
                                           help="Lite: weight-only int8 or int16."),
    fp16: bool = typer.Option(False, "--fp16", help="Lite arm8: ARMv8.2 fp16 kernels."),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Lite: the checkpoint (default: the one the export recorded)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
    no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Convert an exported model to ONNX, OpenVINO IR or Paddle Lite .nb."""
    from .convert import convert as convert_model
    from .convert import make_options

    # Every flag goes to the target's typed options: one it does not honour is an error there.
    options = make_options(to, {"opset": opset, "precision": precision, "arch": arch,
                                "quantize": quantize, "fp16": fp16, "weights": weights})
    with err.status(f"converting to {to}") as status:
        result = convert_model(src, to, out_dir, options, model=model, labels=labels, force=force,
                               verify=not no_verify, progress=status.update)
    if as_json:
        return _print_json(asdict(result))
    out.print(f"[green]converted[/] {result.model or src} to {result.target} in {result.out_dir} "
              f"({result.seconds:.1f} s, stores {result.precision})")
    for name in [*result.files, "manifest.json"]:
        out.print(f"  {name}")


BAD_IMAGES_HELP = ("Unreadable, corrupt or too large images: skip (one warning line with the "
                   "count) or stop (exit 1 at the first).")
MAX_PIXELS_HELP = ("Refuse images with more pixels, read from the header before decoding "
                   "(default 178956970, or $VITDEPLOY_MAX_IMAGE_PIXELS).")


def _image_options(bad_images: str, max_pixels: Optional[int]) -> dict:
    """Check --bad-images; --max-image-pixels also becomes OpenCV's own limit, which OpenCV reads
    once when it loads (before any model does), so a genuine large image is not refused there."""
    choices = ("skip", "stop")
    if bad_images not in choices:
        raise VitdeployError(f"unknown --bad-images {bad_images!r}; choose one of: {', '.join(choices)}")
    if max_pixels is not None:
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)
    return {"on_bad_image": bad_images, "max_pixels": max_pixels}


def _warn_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        n = len(skipped)
        err.print(f"warning: skipped {n} unusable image{'s' if n > 1 else ''} "
                  f"(first: {skipped[0][1]})", markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def predict(
    artifact: Path = typer.Argument(..., help="Artifact directory (from export or convert)."),
    images: list[Path] = typer.Argument(..., help="Image files or directories."),
    k: int = typer.Option(5, "--topk", "-k", min=1, help="Classes to show per image."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r",
                                          help="Runtime (default: from the directory)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per inference call."),
    precision: Optional[str] = typer.Option(None, "--precision",
                                            help="Compute precision (openvino: fp32, bf16, fp16)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
    bad_images: str = typer.Option("skip", "--bad-images", help=BAD_IMAGES_HELP),
    max_pixels: Optional[int] = typer.Option(None, "--max-image-pixels", min=1,
                                             help=MAX_PIXELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Classify images with an exported or converted model."""
    image_options = _image_options(bad_images, max_pixels)
    from .predictor import Predictor

    with Predictor(artifact, runtime=runtime, precision=precision, model=model,
                   verify=not no_verify) as pred:
        results = pred.predict_images(images, topk_k=k, batch_size=batch_size, **image_options)
    _warn_skipped(results.skipped)  # stderr only: the --json list format stays as it was
    if as_json:
        return _print_json([r.to_dict() for r in results])
    rt = pred.runtime
    table = Table(title=f"{len(results)} images ({rt.name}; stores {rt.artifact_precision}, computed "
                        f"in {rt.compute_precision})")
    for note in rt.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
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


def _batch_sizes(text: str) -> list[int]:
    parts = [v.strip() for v in text.split(",")]
    if not all(v.isdigit() and int(v) >= 1 for v in parts):
        raise VitdeployError(f"--batch-sizes {text!r}: expected comma-separated positive integers, "
                             "e.g. 1,4,8")
    return [int(v) for v in parts]


@app.command()
@handle_errors
def parity(
    ref_dir: Path = typer.Argument(..., help="Paddle export directory: the fp32 reference."),
    artifacts: list[Path] = typer.Argument(..., help="Artifact directories to compare."),
    images: Optional[list[Path]] = typer.Option(
        None, "--images", help="Images or folders to use as inputs (repeatable); "
        "default: seeded random tensors."),
    batch_sizes: str = typer.Option("1,4,8", "--batch-sizes", help="Comma-separated batch sizes."),
    runtime: Optional[list[str]] = typer.Option(
        None, "--runtime", "-r", help="Runtime(s) to run each artifact on (repeatable); "
        "default: the artifact's own."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="Compute precision where a runtime offers one (openvino: "
        "fp32 default, bf16, fp16)."),
    num_random: int = typer.Option(8, "--num-random", min=1, help="Random inputs without --images."),
    min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="Override the preset."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1-agreement",
                                             help="Override the preset (0..1)."),
    max_abs: Optional[float] = typer.Option(None, "--max-abs", help="Also bound the max abs diff."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
    bad_images: str = typer.Option("skip", "--bad-images", help=BAD_IMAGES_HELP),
    max_pixels: Optional[int] = typer.Option(None, "--max-image-pixels", min=1,
                                             help=MAX_PIXELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Prove that artifacts give the same outputs as the Paddle fp32 reference (exit 2 if not)."""
    image_options = _image_options(bad_images, max_pixels)
    from .parity import run_parity

    overrides = {k: v for k, v in (("min_cosine", min_cosine), ("min_top1_agreement", min_top1),
                                   ("max_abs", max_abs)) if v is not None}
    with err.status("parity") as status:
        report = run_parity(ref_dir, artifacts, images=images,
                            batch_sizes=_batch_sizes(batch_sizes), runtimes=runtime,
                            precision=precision, num_random=num_random, overrides=overrides,
                            model=model, verify=not no_verify, progress=status.update,
                            **image_options)
    _warn_skipped([(s["image"], s["reason"]) for s in report.inputs.get("skipped", [])])
    if as_json:
        _print_json(report.to_dict())
    else:
        _parity_table(report)
    if not report.passed:
        raise typer.Exit(2)


def _parity_table(report) -> None:
    inputs = report.inputs
    what = "images" if inputs["kind"] == "images" else "random inputs"
    table = Table(title=f"parity vs {report.reference['dir']} (paddle fp32) on {inputs['count']} "
                        f"{what}, batch sizes {','.join(map(str, report.batch_sizes))}")
    for col in ("artifact", "runtime", "stored", "computed", "judged as", "max abs", "mean abs",
                "cosine min", "top-1", "top-5", "batch diff", "result"):
        table.add_column(col, justify="left" if col in ("artifact", "runtime", "result") else "right")
    for r in report.results:
        verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/] " + "; ".join(r.failures)
        runtime = f"{r.runtime} ({r.detail})" if r.detail else r.runtime
        computed = r.compute_precision + "".join(f" ({n})" for n in r.notes)
        table.add_row(r.artifact, runtime, r.artifact_precision, computed, r.precision,
                      f"{r.max_abs:.2e}", f"{r.mean_abs:.2e}",
                      f"{r.cosine_min:.7f}", f"{r.top1_agreement:.1%}", f"{r.top5_overlap:.1%}",
                      f"{r.batch_max_diff:.1e}", verdict)
    out.print(table)
    out.print("[green]all artifacts agree with the reference[/]" if report.passed
              else "[red]parity check failed[/]")


@app.command("eval")
@handle_errors
def eval_cmd(
    artifact: Path = typer.Argument(..., help="Artifact directory."),
    folder: Path = typer.Argument(..., help="ImageNet-style folder: one sub-folder per class."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime name."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1", min=0.0, max=1.0,
                                             help="Exit 2 when top-1 is below this."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
    bad_images: str = typer.Option("skip", "--bad-images", help=BAD_IMAGES_HELP),
    max_pixels: Optional[int] = typer.Option(None, "--max-image-pixels", min=1,
                                             help=MAX_PIXELS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Measure top-1 / top-5 accuracy on a labelled image folder."""
    image_options = _image_options(bad_images, max_pixels)
    from .evaluate import evaluate
    from .predictor import Predictor
    from .preprocess import skipped_records

    with Predictor(artifact, runtime=runtime, model=model, verify=not no_verify) as pred:
        with err.status(f"evaluating on {folder}"):
            result = evaluate(pred, folder, **image_options)
    _warn_skipped(result.skipped)
    passed = min_top1 is None or result.top1 >= min_top1
    if as_json:
        _print_json({**asdict(result), "skipped": skipped_records(result.skipped),
                     "min_top1": min_top1, "passed": passed})
    else:
        out.print(f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  on {result.images} images "
                  f"({result.runtime})")
    if not passed:
        err.print(f"top-1 {result.top1:.4f} is below --min-top1 {min_top1}")
        raise typer.Exit(2)


lite_app = typer.Typer(help="The managed Paddle Lite toolchain (Python 3.10 + Paddle 2.6 + paddlelite).",
                       no_args_is_help=True)
app.add_typer(lite_app, name="lite")


@lite_app.command("setup")
@handle_errors
def lite_setup(force: bool = typer.Option(False, "--force", help="Recreate the environment."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Create (or check) the Lite environment; idempotent."""
    from .lite import env as lite_env

    with err.status("setting up the Paddle Lite toolchain") as status:
        st = lite_env.setup(force=force, log=status.update)
    if as_json:
        return _print_json(asdict(st))
    out.print(f"[green]Lite toolchain ready[/] at {st.env}: " +
              ", ".join(f"{k} {v}" for k, v in st.versions.items()))


@app.command()
@handle_errors
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Report every runtime and the Lite toolchain with versions and what is missing."""
    from .doctor import diagnose

    report = diagnose()
    if as_json:
        return _print_json(report)
    table = Table(title="vitdeploy doctor")
    for col in ("component", "status", "version", "notes"):
        table.add_column(col)
    for row in report["components"]:
        mark = "[green]ok[/]" if row["ok"] else "[red]missing[/]"
        table.add_row(row["name"], mark, row.get("version") or "", row.get("notes") or "")
    out.print(table)


@app.command()
@handle_errors
def inspect(model: Path = typer.Argument(..., help="A Paddle Lite .nb file."),
            arch: str = typer.Option("arm8", "--arch", help="Target to check placement for."),
            as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Read a Paddle Lite .nb: opt version, ops, kernel places, weight precision."""
    from .lite.naive_buffer import TARGET_PLACES, read_nb

    if arch not in TARGET_PLACES:
        raise VitdeployError(f"unknown --arch {arch!r}; available: {', '.join(TARGET_PLACES)}")
    info = read_nb(model)
    unplaced = info.unplaced(arch)
    data = {"path": str(model), "opt_version": info.opt_version, "meta_version": info.meta_version,
            "arch": arch, "ops": info.op_counts(), "all_placed": not unplaced, "unplaced": unplaced,
            "weights_precision": info.weight_precision(),
            "compute_precision": info.compute_precision(), "needs_extra": info.needs_extra()}
    if as_json:
        return _print_json(data)
    table = Table(title=f"{model} (opt {info.opt_version}; stores {data['weights_precision']} "
                        f"weights, computes in {data['compute_precision']})")
    for col in ("op", "target", "precision", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for op in data["ops"]:
        table.add_row(op["type"], op["target"], op["precision"], str(op["count"]))
    out.print(table)
    placed = ", ".join(sorted(TARGET_PLACES[arch]))
    out.print(f"all {len(info.ops)} ops placed on {placed}" if not unplaced
              else f"[red]ops without a {arch} kernel:[/] {', '.join(unplaced)}")
    if data["needs_extra"]:
        out.print("needs Paddle Lite's with_extra library for: " + ", ".join(data["needs_extra"]))


def run() -> None:
    app()


if __name__ == "__main__":
    run()
