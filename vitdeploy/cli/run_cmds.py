"""Commands that run artifacts: predict, reference, parity, eval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import OptionError, VitdeployError
from .base import (
    AsJson,
    BadImages,
    BatchSizes,
    MaxPixels,
    ModelName,
    NoVerify,
    Precision,
    RuntimeName,
    RuntimeNames,
    SavePath,
    Settings,
    Threads,
    app,
    check_threads,
    emit,
    err,
    handle_errors,
    image_options,
    out,
    parse_batch_sizes,
    parse_settings,
    print_json,
    say,
    warn_skipped,
)

if TYPE_CHECKING:
    from ..check.evaluate import EvalRow


@app.command()
@handle_errors
def predict(
    artifact: Path = typer.Argument(..., help="Artifact directory (from export or convert)."),
    images: list[Path] = typer.Argument(..., help="Image files or directories."),
    k: int = typer.Option(5, "--topk", "-k", min=1, help="Classes to show per image."),
    runtime: RuntimeName = None,
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per inference call [default: 8; 32 with --out]."),
    precision: Precision = None,
    threads: Threads = None,
    setting: Settings = None,
    model: ModelName = None,
    no_verify: NoVerify = False,
    bad_images: BadImages = "skip",
    max_pixels: MaxPixels = None,
    out_file: Optional[Path] = typer.Option(
        None, "--out", help="Stream predictions to a .parquet or .jsonl file instead of a table: "
        "folders, files, PaddleClas list files or text files of paths, millions of images, "
        "bounded memory (docs/bulk.md)."),
    resume: bool = typer.Option(False, "--resume", help="With --out: keep what an earlier run "
                                "wrote and predict only the images it lacks."),
    force: bool = typer.Option(False, "--force", help="With --out: replace an existing output."),
    workers: int = typer.Option(2, "--workers", help="With --out: image-decoding threads; with "
                                "--ray: model actors."),
    ray: Optional[str] = typer.Option(None, "--ray", help="With --out: run on Ray Data, 'auto' "
                                      "(a local Ray) or a cluster ADDRESS."),
    logits: bool = typer.Option(False, "--logits", help="With --out: also store raw outputs."),
    as_json: AsJson = False,
):
    """Classify images with an exported or converted model."""
    images_opts = image_options(bad_images, max_pixels)
    check_threads(threads)
    if out_file is None and (ray is not None or resume or force or logits):
        used = next(f for f, v in (("--ray", ray is not None), ("--resume", resume),
                                   ("--force", force), ("--logits", logits)) if v)
        raise OptionError(f"{used} applies to bulk prediction: add --out preds.parquet (or "
                          ".jsonl)")
    if out_file is not None:
        from .bulk_cmds import predict_to_file

        return predict_to_file(artifact, images, out_file, k, runtime, batch_size or 32, precision,
                               threads, parse_settings(setting), not no_verify, max_pixels,
                               resume, force, workers, logits, ray, as_json)
    from ..predictor import Predictor

    with Predictor(artifact, runtime=runtime, precision=precision, model=model, threads=threads,
                   settings=parse_settings(setting), verify=not no_verify) as pred:
        results = pred.predict_images(images, topk_k=k, batch_size=batch_size or 8, **images_opts)
    warn_skipped(results.skipped)  # stderr only: the --json list format stays as it was
    if as_json:
        return print_json([r.to_dict() for r in results])
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


@app.command()
@handle_errors
def reference(
    artifact: Path = typer.Argument(..., help="Artifact whose outputs become the reference "
                                    "(usually the Paddle export)."),
    images: list[Path] = typer.Option(..., "--images", help="Images or folders (repeatable); "
                                      "folders are read recursively, sorted."),
    out_file: Path = typer.Option(..., "--out", help="Reference file to write (.npz)."),
    runtime: RuntimeName = None,
    precision: Precision = None,
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Use only the first N images."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    threads: Threads = None,
    model: ModelName = None,
    no_verify: NoVerify = False,
    bad_images: BadImages = "skip",
    max_pixels: MaxPixels = None,
    as_json: AsJson = False,
):
    """Save an artifact's outputs on images as a portable reference file for 'vitdeploy parity'."""
    images_opts = image_options(bad_images, max_pixels)
    check_threads(threads)
    from ..check.reference import check_reference_out, compute_reference, save_reference

    check_reference_out(out_file, force=force, protect=[artifact])  # before the long part
    with err.status("reference") as status:
        ref = compute_reference(artifact, images, runtime=runtime, precision=precision,
                                limit=limit, model=model, verify=not no_verify, threads=threads,
                                progress=status.update, **images_opts)
        path = save_reference(ref, out_file, force=force, protect=[artifact])
    warn_skipped(ref.skipped)
    summary = {**ref.describe(), "bytes": path.stat().st_size,
               "skipped": len(ref.skipped)}
    if as_json:
        return print_json(summary)
    versions = ", ".join(f"{k} {v}" for k, v in summary["versions"].items())
    for label, value in (
            ("reference", f"{path} ({summary['bytes'] / 1024:.0f} KiB)"),
            ("model", f"{summary['model'] or 'unknown'} (artifact {summary['artifact']})"),
            ("runtime", f"{summary['runtime']}; stores {summary['artifact_precision']}, computed "
                        f"in {summary['precision']}"),
            ("inputs", f"{summary['count']} images, {'x'.join(map(str, summary['input_shape']))}"
                       f" -> {summary['num_classes']} classes"),
            ("machine", summary["machine"]), ("versions", versions)):
        say(f"{label:>9}: {value}")


@app.command()
@handle_errors
def parity(
    ref_dir: Path = typer.Argument(..., help="Paddle export directory (the fp32 reference, run "
                                   "here), or a reference file (.npz) from 'vitdeploy reference'."),
    artifacts: list[Path] = typer.Argument(..., help="Artifact directories to compare."),
    images: Optional[list[Path]] = typer.Option(
        None, "--images", help="Images or folders to use as inputs (repeatable); "
        "default: seeded random tensors."),
    batch_sizes: BatchSizes = "1,4,8",
    runtime: RuntimeNames = None,
    precision: Precision = None,
    num_random: int = typer.Option(8, "--num-random", min=1, help="Random inputs without --images."),
    min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="Override the preset."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1-agreement",
                                             help="Override the preset (0..1)."),
    max_abs: Optional[float] = typer.Option(None, "--max-abs", help="Also bound the max abs diff."),
    threads: Threads = None,
    setting: Settings = None,
    model: ModelName = None,
    no_verify: NoVerify = False,
    bad_images: BadImages = "skip",
    max_pixels: MaxPixels = None,
    save: SavePath = None,
    as_json: AsJson = False,
):
    """Prove that artifacts give the same outputs as the Paddle fp32 reference or a saved
    reference file (exit 2 if not)."""
    images_opts = image_options(bad_images, max_pixels)
    check_threads(threads)
    from ..check.parity import run_parity
    from ..check.results import check_save_path

    if save is not None:  # refused now, not after the run
        check_save_path(save)

    overrides = {k: v for k, v in (("min_cosine", min_cosine), ("min_top1_agreement", min_top1),
                                   ("max_abs", max_abs)) if v is not None}
    with err.status("parity") as status:
        report = run_parity(ref_dir, artifacts, images=images,
                            batch_sizes=parse_batch_sizes(batch_sizes), runtimes=runtime,
                            precision=precision, num_random=num_random, overrides=overrides,
                            model=model, verify=not no_verify, progress=status.update,
                            threads=threads, settings=parse_settings(setting), **images_opts)
    warn_skipped([(s["image"], s["reason"]) for s in report.inputs.get("skipped", [])])
    emit("parity", report.to_dict(), as_json, save, lambda: parity_table(report))
    if not report.passed:
        raise typer.Exit(2)


def parity_table(report, console: Console | None = None) -> None:
    """The parity records as a table; ``console`` for a test's fixed width (default: stdout)."""
    console = console or out
    inputs, ref = report.inputs, report.reference
    what = {"images": "images", "reference": "reference inputs"}.get(inputs["kind"], "random inputs")
    if ref.get("kind") == "file":
        versions = ", ".join(f"{k} {v}" for k, v in ref["versions"].items())
        source = (f"{ref['file']} ({ref['runtime']} {ref['precision']} on {ref['machine']}; "
                  f"{versions})")
    else:
        source = f"{ref['dir']} (paddle fp32)"
    say(f"reference: {source}", console)
    table = Table(title=f"parity on {inputs['count']} {what}, batch sizes "
                        f"{','.join(map(str, report.batch_sizes))}")
    for col in ("artifact", "runtime", "stored", "computed", "judged as", "max abs", "mean abs",
                "cosine min", "top-1", "top-5", "batch diff", "result"):
        table.add_column(col, justify="left" if col in ("artifact", "runtime", "result") else "right")
    for r in report.results:
        verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/] " + "; ".join(r.failures)
        runtime = f"{r.runtime} ({r.detail})" if r.detail else r.runtime
        table.add_row(r.artifact, runtime, r.artifact_precision,
                      r.compute_precision + ("*" if r.notes else ""), r.precision,
                      f"{r.max_abs:.2e}", f"{r.mean_abs:.2e}",
                      f"{r.cosine_min:.7f}", f"{r.top1_agreement:.1%}", f"{r.top5_overlap:.1%}",
                      f"{r.batch_max_diff:.1e}", verdict)
    console.print(table)
    for r in report.results:
        for note in r.notes:
            say(f"* {r.artifact}: {note}", console)
    console.print("[green]all artifacts agree with the reference[/]" if report.passed
                  else "[red]parity check failed[/]")


@app.command("eval")
@handle_errors
def eval_cmd(
    artifacts: list[Path] = typer.Argument(
        ..., help="Artifact directories; the first is the reference for the top-1 delta "
        "(by convention the fp32 export)."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Labelled images: an ImageNet-style folder (one sub-folder per class, "
        "named by label or class id) or a PaddleClas list file ('path class_id' per line)."),
    runtime: RuntimeName = None,
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per inference call."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Evaluate only the first N images."),
    min_top1: Optional[float] = typer.Option(None, "--min-top1", min=0.0, max=1.0,
                                             help="Exit 2 when any artifact's top-1 is below this."),
    threads: Threads = None,
    setting: Settings = None,
    model: ModelName = None,
    no_verify: NoVerify = False,
    bad_images: BadImages = "skip",
    max_pixels: MaxPixels = None,
    save: SavePath = None,
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on Ray Data: 'auto' (a local Ray) "
                                      "or a cluster ADDRESS; the same numbers (docs/bulk.md)."),
    workers: int = typer.Option(1, "--workers", help="With --ray: model actors per artifact."),
    as_json: AsJson = False,
):
    """Measure top-1 / top-5 accuracy of one or more artifacts on the same labelled images."""
    if data is None:  # the old `eval ARTIFACT FOLDER` form lands here too
        raise VitdeployError("pass the labelled images with --data DIR (an ImageNet-style folder "
                             "or a PaddleClas list file)")
    images_opts = image_options(bad_images, max_pixels)
    check_threads(threads)
    from ..check.evaluate import evaluate_many
    from ..check.results import check_save_path, save_result

    if save is not None:
        check_save_path(save)

    if ray is None and workers != 1:
        raise OptionError("--workers applies to --ray (model actors per artifact); add --ray auto "
                          "or --ray HOST:PORT")
    if ray is not None:
        from ..bulk import evaluate_on_ray as evaluate_many  # the same rows, on Ray
    opts = {"ray": ray, "workers": workers} if ray is not None else {}
    with err.status(f"evaluating on {data}") as status:
        rows = evaluate_many(artifacts, data, runtime=runtime, batch_size=batch_size, limit=limit,
                             model=model, verify=not no_verify, progress=status.update,
                             threads=threads, settings=parse_settings(setting),
                             **images_opts, **opts)
    warn_skipped(_distinct_skipped(rows))
    if as_json:
        print_json([r.to_dict() for r in rows])
    else:
        eval_table(rows, data)
    if save is not None:  # the --json list, with the data it was measured on
        save_result("eval", {"data": str(data), "results": [r.to_dict() for r in rows]}, save)
    failing = [r for r in rows if min_top1 is not None and r.top1 < min_top1]
    for r in failing:
        err.print(f"{r.artifact}: top-1 {r.top1:.4f} is below --min-top1 {min_top1}",
                  markup=False, highlight=False, soft_wrap=True)
    if failing:
        raise typer.Exit(2)


def _distinct_skipped(rows: list[EvalRow]) -> list[tuple[str, str]]:
    """Each skipped image once, though every artifact skipped it: one warning line in all."""
    seen: dict[str, str] = {}
    for r in rows:
        for image, reason in r.skipped:
            seen.setdefault(image, reason)
    return list(seen.items())


def eval_table(rows: list[EvalRow], data: Path, console: Console | None = None) -> None:
    """The eval records as a table; ``console`` for a test's fixed width (default: stdout)."""
    console = console or out
    total = rows[0].n + len(rows[0].skipped)  # the images listed (after --limit), scored or not
    say(f"data: {data} ({total} images); delta vs {rows[0].artifact}", console)
    table = Table(title="top-1 / top-5")
    for col in ("artifact", "runtime", "stored", "computed", "top-1", "top-5", "Δ top-1 vs first",
                "images"):
        table.add_column(col, justify="left" if col in ("artifact", "runtime") else "right")
    for i, r in enumerate(rows):
        runtime = f"{r.runtime} ({r.detail})" if r.detail else r.runtime
        computed = r.compute_precision + "".join(f" ({n})" for n in r.notes)
        delta = "reference" if i == 0 else f"{r.delta_top1:+.2f} pts"
        table.add_row(r.artifact, runtime, r.artifact_precision, computed, f"{r.top1:.2%}",
                      f"{r.top5:.2%}", delta, str(r.n))
    console.print(table)
