"""``eval --ray``: top-1 / top-5 of each artifact on Ray Data, tallied exactly as in-process.

Invariant: the same labelled pairs (``check.evaluate.labelled_data``, first ``limit``), the same
ranking (raw outputs, stable argsort, ties to the lower class id), the same skipped images with
the same reasons: the rows are ``evaluate_many``'s, number for number. Each artifact runs as one
Ray job on one actor pool; the driver loads no model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ..artifact import read_artifact_info, verify_artifact
from ..check.evaluate import EvalRow, check_eval_options, labelled_data, same_labels
from ..errors import ImageError, OptionError
from ..options import positive_int
from ..predictor import settings_for
from ..preprocess import Skipped, no_usable_images
from .ray_engine import Job, actor_settings, cluster, stream
from .sources import Entry


def evaluate_on_ray(artifacts: Sequence[str | Path], data: str | Path, *, ray: str = "auto",
                    workers: int = 1, runtime: str | None = None, batch_size: int = 32,
                    limit: int | None = None, model: str | None = None, verify: bool = True,
                    on_bad_image: str = "skip", max_pixels: int | None = None,
                    threads: int | None = None, settings: dict[str, object] | None = None,
                    progress: Callable[[str], None] | None = None) -> list[EvalRow]:
    """``evaluate_many``'s rows, computed on Ray (``ray``: "auto" or a cluster's address) with
    ``workers`` actors per artifact."""
    say = progress or (lambda _m: None)
    check_eval_options(batch_size, limit, on_bad_image)
    positive_int(workers, "--workers", 1, 256)
    if not artifacts:
        raise OptionError("name at least one artifact directory to evaluate")
    infos = []
    for artifact in artifacts:  # every artifact checked before Ray starts
        if verify:
            verify_artifact(artifact)
        info = read_artifact_info(artifact, model=model)
        if infos:
            same_labels(infos[0].labels, info.labels, artifact, artifacts[0])
        infos.append(info)
    pairs = labelled_data(data, infos[0].labels, infos[0].num_classes)[:limit]
    rows: list[EvalRow] = []
    with cluster(ray, workers, threads) as plan:
        for n, (artifact, info) in enumerate(zip(artifacts, infos, strict=True), 1):
            say(f"evaluating {artifact} on Ray ({n}/{len(artifacts)}): {len(pairs)} images")
            job = Job(str(Path(artifact).absolute()), runtime, None,
                      actor_settings(artifact, runtime, settings_for(artifact, runtime, settings)),
                      5, False, batch_size, by_raw=True)
            _, batches = stream((Entry(str(p), cid) for p, cid in pairs), job, plan,
                                max_pixels=max_pixels, pre=info.preprocess)
            rows.append(_tally(str(artifact), batches, on_bad_image))
    for row in rows[1:]:
        row.delta_top1 = (row.top1 - rows[0].top1) * 100
    return rows


def _tally(artifact: str, batches, on_bad_image: str) -> EvalRow:
    hits1 = hits5 = n = 0
    skipped: Skipped = []
    runtime: dict = {}
    for b in batches:
        runtime = runtime or json.loads(str(b["runtime"][0]))
        for i in range(len(b["image"])):
            if not b["ok"][i]:
                if on_bad_image == "stop":
                    raise ImageError(str(b["error"][i]))
                skipped.append((str(b["image"][i]), str(b["error"][i])))
                continue
            ids, truth = list(b["topk_ids"][i]), int(b["label"][i])
            hits1 += int(ids[0] == truth)
            hits5 += int(truth in ids[:5])
            n += 1
    if not n:
        raise no_usable_images(skipped)
    return EvalRow(artifact, runtime["name"], runtime["artifact_precision"],
                   runtime["compute_precision"], hits1 / n, hits5 / n, n, skipped=skipped,
                   detail=runtime["detail"], notes=runtime["notes"])
