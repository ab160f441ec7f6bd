"""The ops and kernels the 20 seed architectures (and the digits sample) use on ARM, as Paddle
Lite's opt records them: the lists a tailored ARM build (``vitdeploy lite setup --arm``) compiles,
written to vitdeploy/lite/arm_tailoring/. Rerun when the zoo or the converter changes.

    python scripts/arm_tailoring.py

Each model: seeded random weights, the legacy program the Lite conversion re-exports (Paddle 2.6,
vitdeploy's deployment folding), then opt for arm with --record_tailoring_info; fp32 and
weight-only int8 record the same kernels (checked on the sample). opt's lists are parallel (a
kernel and the source file that builds it): the union keeps the pairs, one per line.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitdeploy.lite import env as lite_env  # noqa: E402
from vitdeploy.models import list_models  # noqa: E402
from vitdeploy.models.loader import save_random_checkpoint  # noqa: E402

OUT = ROOT / "vitdeploy" / "lite" / "arm_tailoring"
LISTS = (".tailored_ops_list", ".tailored_kernels_list", ".tailored_ops_source_list",
         ".tailored_kernels_source_list")


Pairs = dict[str, set[tuple[str, str]]]  # "ops" / "kernels" -> {(name or attributes, source)}


def record(name: str, ckpt: Path, work: Path, quantize: str | None = None) -> Pairs:
    legacy = work / "legacy"
    if not legacy.is_dir():
        lite_env.run_worker("export", {"model": name, "weights": str(ckpt), "out": str(legacy)})
    out = work / f"opt-{quantize or 'fp32'}"
    out.mkdir()
    res = lite_env.run_worker("optimize", {"model_dir": str(legacy), "valid_places": "arm",
                                           "out_prefix": str(out / "model"), "quantize": quantize,
                                           "record_tailoring": True})
    if "error" in res:
        raise SystemExit(f"{name}: {res['error']}")
    rec = {n: (out / "model" / n).read_text().split() for n in LISTS}
    # opt's lists are parallel (line i of the source list builds line i): kept as pairs
    return {"ops": set(zip(rec[".tailored_ops_list"], rec[".tailored_ops_source_list"],
                           strict=True)),
            "kernels": set(zip(rec[".tailored_kernels_list"],
                               rec[".tailored_kernels_source_list"], strict=True))}


def main() -> int:
    union: Pairs = {"ops": set(), "kernels": set()}
    models = [c for c in list_models(include_samples=True)]
    for i, cfg in enumerate(models):
        with tempfile.TemporaryDirectory(prefix="vitdeploy-tailoring-") as tmp:
            work = Path(tmp)
            variant = {"distillation": True} if cfg.family == "levit" else {}
            if cfg.seed:
                ckpt = save_random_checkpoint(cfg.name, work / "w.pdparams", seed=i, **variant)
            else:
                ckpt = ROOT / "samples" / "digits" / "digits_deit.pdparams"
            got = record(cfg.name, ckpt, work)
            if i == 0 or not cfg.seed:  # weight-only int8 records the same kernels: checked here
                assert record(cfg.name, ckpt, work, "int8") == got, f"{cfg.name}: int8 differs"
            for n in union:
                union[n] |= got[n]
            print(f"[{i + 1}/{len(models)}] {cfg.name}: {len(got['kernels'])} kernels", flush=True)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for n, pairs in union.items():  # "<name or attributes> <source file>" per line, sorted;
        # lite/arm.py writes opt's four parallel lists from them for the build
        (OUT / f"{n}.txt").write_text("".join(f"{a} {b}\n" for a, b in sorted(pairs)))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(union['ops'])} ops, "
          f"{len(union['kernels'])} kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
