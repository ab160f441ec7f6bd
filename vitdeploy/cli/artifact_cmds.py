"""Commands that make or describe artifacts: models, export, convert, inspect, doctor, lite setup."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..artifact import MANIFEST
from ..errors import VitdeployError
from .base import AsJson, NoVerify, app, err, handle_errors, out, print_json, say


@app.command()
@handle_errors
def models(as_json: AsJson = False,
           all_models: bool = typer.Option(False, "--all", help="Include our own sample models.")):
    """List the supported architectures with params, FLOPs and input size."""
    from ..zoo import model_table

    rows = model_table(include_samples=all_models)
    if as_json:
        return print_json([asdict(r) for r in rows])
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
    as_json: AsJson = False,
):
    """Export a checkpoint to the Paddle inference format (inference.json + .pdiparams)."""
    from ..export import export_model

    with err.status("exporting") as status:
        result = export_model(model, weights, out_dir, num_classes=num_classes, labels=labels,
                              softmax=softmax, force=force,
                              progress=lambda m: status.update(f"{model}: {m}"))
    if as_json:
        return print_json(asdict(result))
    say(f"{result.model} ({result.num_classes} classes) to {result.out_dir}; exported program "
        f"matches the checkpoint (max abs diff {result.verify_max_abs_diff:.2e})",
        lead="[green]exported[/] ")
    for name in [*result.files, MANIFEST]:
        say(f"  {name}")


def _targets() -> str:
    from ..convert import TARGETS

    return ", ".join(TARGETS)


def _arches() -> str:
    from ..convert.lite import ARCHES

    return ", ".join(ARCHES)


def _recipes() -> str:
    from ..convert import TARGETS
    from ..quantize.recipes import modes

    return "; ".join(f"{t}: {', '.join(modes(t))}" for t in TARGETS if modes(t)) + \
        " (int8 for onnx/openvino calibrates: --calib; lite quantizes weights only)"


@app.command()
@handle_errors
def convert(
    src: Path = typer.Argument(..., help="Export directory (vitdeploy's or PaddleClas's)."),
    to: str = typer.Option(..., "--to", help=f"Target: {_targets()}."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    opset: Optional[int] = typer.Option(None, "--opset", help="onnx/openvino: ONNX opset (default 17)."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="onnx: fp32 (default) or fp16 (fp16 weights and compute, fp32 "
        "I/O); openvino: fp32 or fp16 (weights compressed)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Architecture whose preprocessing to record, for a PaddleClas "
        "directory without inference.yml."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labels file (with --model)."),
    arch: Optional[str] = typer.Option(None, "--arch", help=f"Lite: {_arches()} (default arm8)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help=f"{_recipes()}."),
    calib: Optional[Path] = typer.Option(
        None, "--calib", help="onnx/openvino --quantize int8: calibration images (training-style, "
        "never the evaluation data)."),
    calib_size: Optional[int] = typer.Option(None, "--calib-size",
                                             help="Calibration images to use (default 300)."),
    max_drop: Optional[float] = typer.Option(
        None, "--max-drop", help="Accuracy budget in top-1 points, measured on --eval-data: the "
        "most sensitive layers go back to float until within it (exit 2 if it cannot)."),
    eval_data: Optional[Path] = typer.Option(
        None, "--eval-data", help="Labelled images (class folders or a PaddleClas list file) for "
        "--max-drop; the accuracy is recorded in the manifest."),
    fp16: bool = typer.Option(False, "--fp16", help="Lite arm8: ARMv8.2 fp16 kernels."),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Lite: the checkpoint (default: the one the export recorded)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty output directory."),
    no_verify: NoVerify = False,
    as_json: AsJson = False,
):
    """Convert an exported model to ONNX, OpenVINO IR or Paddle Lite .nb."""
    from ..convert import convert as convert_model
    from ..convert import make_options

    # Every flag goes to the target's typed options: one it does not honour is an error there.
    options = make_options(to, {"opset": opset, "precision": precision, "arch": arch,
                                "quantize": quantize, "fp16": fp16, "weights": weights,
                                "calib": calib, "calib_size": calib_size, "max_drop": max_drop,
                                "eval_data": eval_data})
    with err.status(f"converting to {to}") as status:
        result = convert_model(src, to, out_dir, options, model=model, labels=labels, force=force,
                               verify=not no_verify, progress=status.update)
    if as_json:
        return print_json(asdict(result))
    say(f"{result.model or src} to {result.target} in {result.out_dir} "
        f"({result.seconds:.1f} s, stores {result.precision})", lead="[green]converted[/] ")
    for name in [*result.files, MANIFEST]:
        say(f"  {name}")


lite_app = typer.Typer(help="The managed Paddle Lite toolchain (Python 3.10 + Paddle 2.6 + paddlelite).",
                       no_args_is_help=True)
app.add_typer(lite_app, name="lite")


@lite_app.command("setup")
@handle_errors
def lite_setup(force: bool = typer.Option(False, "--force", help="Recreate (or rebuild)."),
               arm: Optional[str] = typer.Option(
                   None, "--arm", is_flag=False, flag_value="armv8",
                   help="Also build Paddle Lite's ARM kernels from the source vitdeploy ships, to "
                        "run arm8 / armv7 .nb files here under emulation: --arm (armv8) or --arm "
                        "armv7 (~30 min on 2 cores, once; cached)."),
               all_kernels: bool = typer.Option(
                   False, "--all-kernels", help="With --arm: every Paddle Lite kernel, not only "
                   "those the supported architectures use (for other models; a longer build)."),
               as_json: AsJson = False):
    """Create (or check) the Lite environment; idempotent. With --arm, the ARM kernels too."""
    from ..lite import env as lite_env

    if arm is not None:
        from ..lite.arm import get_abi, missing_text, missing_tools

        missing = missing_tools(get_abi(arm))  # refused now, not after the Lite env
        if missing:
            raise VitdeployError(f"building the {arm} ARM kernels needs {missing_text(missing)}")
    with err.status("setting up the Paddle Lite toolchain") as status:
        st = lite_env.setup(force=force and arm is None, log=status.update)
    if all_kernels and arm is None:
        raise VitdeployError("--all-kernels goes with --arm (the ARM build to make)")
    arm_st = _arm_setup(arm, force, all_kernels) if arm is not None else None
    if as_json:
        return print_json({**asdict(st), **({"arm": arm_st.to_dict()} if arm_st else {})})
    say(f"at {st.env}: " + ", ".join(f"{k} {v}" for k, v in st.versions.items()),
        lead="[green]Lite toolchain ready[/] ")
    if arm_st is not None:
        b = arm_st.build
        say(f"at {arm_st.dir} (built in {b.get('seconds', 0) / 60:.1f} min with "
            f"{b.get('compiler', '?')})", lead=f"[green]ARM kernels ({arm_st.abi}) ready[/] ")


def _arm_setup(abi: str, force: bool, full: bool):
    """The ARM build, with a progress bar and an estimate on a terminal; in a log (CI), one
    line per step and per tenth of the compile."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..lite.arm import setup

    if not err.is_terminal:
        last = [-1.0, ""]

        def log(done: float, msg: str) -> None:
            step = msg.split(":")[0]
            if step != last[1] or done - last[0] >= 0.1:
                err.print(f"{abi}: {msg}", soft_wrap=True, highlight=False)
                last[:] = [done, step]
        return setup(abi, force=force, full=full, progress=log)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(f"building the {abi} ARM kernels", total=1.0)
        return setup(abi, force=force, full=full,
                     progress=lambda done, msg: bar.update(task, completed=done, description=msg))


@app.command()
@handle_errors
def doctor(as_json: AsJson = False):
    """Report every runtime and the Lite toolchain with versions and what is missing."""
    from ..doctor import diagnose

    report = diagnose()
    if as_json:
        return print_json(report)
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
            as_json: AsJson = False):
    """Read a Paddle Lite .nb: opt version, ops, kernel places, weight precision."""
    from ..lite.naive_buffer import TARGET_PLACES, read_nb

    if arch not in TARGET_PLACES:
        raise VitdeployError(f"unknown --arch {arch!r}; available: {', '.join(TARGET_PLACES)}")
    info = read_nb(model)
    unplaced = info.unplaced(arch)
    data = {"path": str(model), "opt_version": info.opt_version, "meta_version": info.meta_version,
            "arch": arch, "ops": info.op_counts(), "all_placed": not unplaced, "unplaced": unplaced,
            "weights_precision": info.weight_precision(),
            "compute_precision": info.compute_precision(), "needs_extra": info.needs_extra(),
            "runs_here_on": _kernels_here(arch)}
    if as_json:
        return print_json(data)
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
    say(f"runs here on: {data['runs_here_on']}")


def _kernels_here(arch: str) -> str:
    """Which kernels 'vitdeploy parity/predict' use for a .nb of ``arch`` on this machine."""
    if arch in ("x86", "opencl"):
        return "Paddle Lite's x86 kernels" if arch == "x86" else "the x86 twin (no OpenCL device)"
    from ..lite.arm import abi_for, native, status

    abi = abi_for(arch)
    st = status(abi.name)
    if st.ready:
        how = "natively" if native(abi) else f"under {abi.qemu}"
        return f"Paddle Lite's {abi.name} ARM kernels ({how}; runtime lite-arm)"
    return (f"the x86 twin ('vitdeploy lite setup --arm {abi.name}' builds the {abi.name} ARM "
            "kernels)")
