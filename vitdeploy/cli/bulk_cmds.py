"""``vitdeploy predict --out FILE``: bulk prediction to Parquet / JSON lines, rendered."""

from __future__ import annotations

from pathlib import Path

from .base import ProgressBar, print_json, say


def predict_to_file(artifact: Path, images: list[Path], out: Path, k: int, runtime: str | None,
                    batch_size: int, precision: str | None, threads: int | None,
                    settings: dict | None, verify: bool, max_pixels: int | None, resume: bool,
                    force: bool, workers: int, logits: bool, ray: str | None,
                    as_json: bool) -> None:
    from dataclasses import asdict

    from ..bulk import predict_to_file as run
    from ..bulk.sink import partial_path
    from ..errors import Interrupted

    bar = ProgressBar(eta=True)
    try:
        result = run(artifact, images, out, topk=k, batch_size=batch_size, workers=workers,
                     runtime=runtime, precision=precision, threads=threads, settings=settings,
                     logits=logits, resume=resume, force=force, max_pixels=max_pixels,
                     verify=verify, ray=ray, progress=bar.update)
    except KeyboardInterrupt:
        if not partial_path(out).is_file():
            raise
        raise Interrupted(f"interrupted; the rows written so far are kept in "
                          f"{partial_path(out)}: rerun with --resume to finish") from None
    finally:
        bar.stop()
    if as_json:
        return print_json(asdict(result))
    say(f"wrote {result.images} rows to {result.out} ({result.format}): {result.predicted} "
        f"predicted, {result.failed} failed, {result.resumed} kept from an earlier run; "
        f"{result.rate:.1f} images/s on {result.runtime} ({result.engine})")
