"""The CLI's shared parts: the app, its one-line error handling, consoles, JSON output and the
options several commands take (as ``Annotated`` aliases, so each is defined once)."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ logging would pollute --json output
warnings.filterwarnings("ignore", message=".*ccache.*")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from typer._click import exceptions as click  # noqa: E402  (typer >= 0.29 vendors click)
from typer.core import TyperGroup  # noqa: E402

from ..about import __version__  # noqa: E402
from ..check.results import strict_json as _finite  # noqa: E402  (NaN/inf become null)
from ..errors import VitdeployError  # noqa: E402

# Wide tables when piped (CI logs); a terminal keeps its own width.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def say(text: str, console: Console | None = None, lead: str = "") -> None:
    """A line of variable content (paths, CPU names, versions), printed whole: rich never wraps
    it (soft wrap) or reads it as markup, so it stays one line whatever the terminal's width or
    the CPU's name. Table titles hold fixed phrases only; what varies goes here. ``lead``: a
    fixed markup prefix such as "[green]converted[/] "."""
    from rich.markup import escape

    (console or out).print(lead + escape(text), highlight=False, soft_wrap=True)


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
            _fail(str(e), getattr(e, "exit_code", 1))
        except KeyboardInterrupt:
            _fail("interrupted; nothing was written", 130)
        except MemoryError:
            _fail("out of memory; try a smaller batch or model")
        except Exception as e:  # an internal error still gets one line
            if os.environ.get("VITDEPLOY_DEBUG"):
                raise
            _fail(f"internal error: {type(e).__name__}: {e} (set VITDEPLOY_DEBUG=1 for a traceback)")

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def emit(kind: str, data: dict, as_json: bool, save: Path | None,
         render: Callable[[], None]) -> None:
    """A result as --json or rendered tables, then (--save) written for 'vitdeploy report'; a
    failed check is a result too: saved before the command exits 2."""
    from ..check.results import save_result

    if as_json:
        print_json(data)
    else:
        render()
    if save is not None:
        save_result(kind, data, save)


def _version(value: bool) -> None:
    if value:
        out.print(f"vitdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version,
                                                is_eager=True, help="Print the version and exit.")
         ) -> None:
    pass


# Help texts name what the registries hold (runtimes, precisions): a runtime added there shows up
# here without an edit.
def _runtimes() -> str:
    from ..runtimes import RUNTIMES

    return ", ".join(RUNTIMES)


def _precisions() -> str:
    from ..runtimes import RUNTIMES

    return "; ".join(f"{c.name}: {', '.join(c.precision_choices)}" for c in RUNTIMES.values()
                     if c.precision_choices) or "none"


# Options several commands share, defined once.
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts and CI.")]
RuntimeName = Annotated[Optional[str], typer.Option(
    "--runtime", "-r", help=f"Runtime ({_runtimes()}); default: the artifact's own.")]
RuntimeNames = Annotated[Optional[list[str]], typer.Option(
    "--runtime", "-r", help=f"Runtime(s) to run each artifact on (repeatable: {_runtimes()}); "
    "default: the artifact's own.")]
Precision = Annotated[Optional[str], typer.Option(
    "--precision", help=f"Compute precision, where a runtime offers a choice ({_precisions()}).")]
Precisions = Annotated[Optional[list[str]], typer.Option(
    "--precision", help=f"Compute precision(s) to measure where a runtime offers them (repeatable; "
    f"{_precisions()}); other runtimes run their model file once.")]
NoVerify = Annotated[bool, typer.Option(
    "--no-verify", help="Skip checking the artifact's files against its manifest.json sha256 digests.")]
ModelName = Annotated[Optional[str], typer.Option(
    "--model", help="Architecture of a bare PaddleClas export without inference.yml or "
    "inference_cls.yaml: its PaddleClas preprocessing is used.")]
BadImages = Annotated[str, typer.Option(
    "--bad-images", help="Unreadable, corrupt or too large images: skip (one warning line with the "
    "count) or stop (exit 1 at the first).")]
MaxPixels = Annotated[Optional[int], typer.Option(
    "--max-image-pixels", min=1, help="Refuse images with more pixels, read from the header "
    "before decoding (default 178956970, or $VITDEPLOY_MAX_IMAGE_PIXELS).")]


SavePath = Annotated[Optional[Path], typer.Option(
    "--save", help="Also write the --json result to this file, for 'vitdeploy report'. Replaces "
    "only a file that an earlier --save wrote.")]


BatchSizes = Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="Threads per runtime, at most the CPUs this process may use (default: the "
    "physical cores).")]


Settings = Annotated[Optional[list[str]], typer.Option(
    "--setting", help="A runtime session setting KEY=VALUE (repeatable), e.g. int8=native; "
    "an unknown key or value is refused with the choices.")]


def parse_settings(items: Optional[list[str]]) -> Optional[dict[str, object]]:
    """``--setting KEY=VALUE`` pairs: true/false become booleans, digits integers; the runtime
    checks keys and values (Runtime.check_settings)."""
    if not items:
        return None
    settings: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise VitdeployError(f"--setting {item!r}: expected KEY=VALUE, e.g. int8=native")
        value: object = raw.strip()
        if raw.strip().lower() in ("true", "false"):
            value = raw.strip().lower() == "true"
        elif raw.strip().isdigit():
            value = int(raw.strip())
        settings[key.strip()] = value
    return settings


def check_threads(threads: Optional[int]) -> Optional[int]:
    """--threads refused before anything loads when the machine cannot run that many."""
    from ..resources import check_threads as check

    return check(threads)


def parse_batch_sizes(text: str) -> list[int]:
    """``--batch-sizes 1,4,8``: positive integers, or one line saying what is expected."""
    parts = [v.strip() for v in text.split(",")]
    if not all(v.isascii() and v.isdigit() and int(v) >= 1 for v in parts):
        raise VitdeployError(f"--batch-sizes {text!r}: expected comma-separated positive integers, "
                             "e.g. 1,4,8")
    return [int(v) for v in parts]


def image_options(bad_images: str, max_pixels: Optional[int]) -> dict:
    """Check --bad-images; --max-image-pixels also becomes OpenCV's own limit, which OpenCV reads
    once when it loads (before any model does), so a genuine large image is not refused there."""
    from ..preprocess import check_policy

    check_policy(bad_images)
    if max_pixels is not None:
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)
    return {"on_bad_image": bad_images, "max_pixels": max_pixels}


def warn_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        n = len(skipped)
        err.print(f"warning: skipped {n} unusable image{'s' if n > 1 else ''} "
                  f"(first: {skipped[0][1]})", markup=False, highlight=False, soft_wrap=True)


class ProgressBar:
    """Progress on stderr from a library's ``progress(done, total, message)``: a bar (with an ETA
    when ``eta``) on a terminal, shown from the first report on, so bad input found before it is
    one error line with no bar around it. In a log there is no bar's last frame: ``log`` maps a
    message to a line worth keeping (None: nothing)."""

    def __init__(self, eta: bool = False, log: Callable[[str], str | None] | None = None) -> None:
        self._progress: Any = None
        self._eta, self._log, self._last = eta, log, ""

    def update(self, done: float, total: float, message: str) -> None:
        if not err.is_terminal:
            line = self._log(message) if self._log else None
            if line and line != self._last:
                self._last = line
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self._progress is None:
            eta = (TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn()) if self._eta else (TimeElapsedColumn(),)
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), *eta,
                                      console=err, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(message, total=total or 1.0)
        self._progress.update(self._task, completed=done, total=total or 1.0,
                              description=message[:70])

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
