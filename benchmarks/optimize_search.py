"""``vitdeploy optimize`` on DeiT_tiny and DeiT_base: docs/optimize.md's speed table and the
search's own cost.

Seeded random weights (speed is what random weights can tell; accuracy comes from the bundled
samples, see docs/optimize.md), given to optimize as a checkpoint with --model (so the export is
part of the search), scored on an evenly spread subset of the digits sample (class ids 0..9 of
the 1000) and calibrated on the digits calibration images. With random weights top-1 is noise,
so the budget is left open (--max-drop 100); parity against Paddle fp32 still decides who may win.

    python benchmarks/optimize_search.py [--models DeiT_tiny_patch16_224 ...] [--limit 100]
                                         [--repeat 20] [--fresh]

Writes .cache/optimize/<model>/ (reused on a rerun unless --fresh) and prints one Markdown table
per model, with the search's wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = ("DeiT_tiny_patch16_224", "DeiT_base_patch16_224")


def search(model: str, limit: int, repeat: int, fresh: bool) -> tuple[dict, float]:
    from vitdeploy.models.loader import save_random_checkpoint

    work = ROOT / ".cache" / "optimize" / model
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "random.pdparams"
    if not ckpt.is_file():
        save_random_checkpoint(model, ckpt, seed=0)
    sample = json.loads((ROOT / "samples" / "sample.json").read_text())
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "vitdeploy.cli", "optimize", str(ckpt), "--model",
                        model, "--eval-data", str(ROOT / sample["test_dir"]), "--limit",
                        str(limit), "--calib", str(ROOT / sample["calib_dir"]), "--max-drop",
                        "100", "--repeat", str(repeat), "--out", str(work / "opt"), "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode not in (0, 2):
        sys.exit(f"optimize failed on {model}: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout), time.perf_counter() - start


def table(model: str, data: dict, wall: float) -> str:
    m = data["machine"]
    lines = [f"### {model}: batch {data['batch_size']}, {data['threads']} threads, {m['cpu']} "
             f"(ISA {' '.join(m['isa']) or 'none tracked'})", "",
             "| candidate | stored / computed | parity | p50 ms | p90 ms | speed-up | verdict |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in data["results"]:
        prec = r["artifact_precision"] if r["artifact_precision"] == r["compute_precision"] \
            else f"{r['artifact_precision']} / {r['compute_precision']}"
        verdict = "**winner**" if r["winner"] else (r["timing_note"] or "")
        p50 = "n/a" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
        p90 = "n/a" if r["p90_ms"] is None else f"{r['p90_ms']:.1f}"
        up = "n/a" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['name']} | {prec} | {'pass' if r['parity_passed'] else 'FAIL'} | "
                     f"{p50} | {p90} | {up} | {verdict} |")
    reused = sum(r["reused"] for r in data["results"])
    lines += ["", f"Search: {data['seconds'] / 60:.1f} min inside optimize ({wall / 60:.1f} min "
              f"wall, {reused} candidates reused); not tried: "
              + "; ".join(f"{k} ({v})" for k, v in data["skipped"].items())]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--fresh", action="store_true", help="rebuild every candidate")
    args = ap.parse_args()
    for model in args.models:
        data, wall = search(model, args.limit, args.repeat, args.fresh)
        print(table(model, data, wall), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
