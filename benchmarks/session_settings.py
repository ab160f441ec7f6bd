"""Which session settings matter for ViT latency on this CPU: docs/benchmarks.md's settings table.

Per runtime, each variant of its session settings (``Runtime.setting_choices``; "vitdeploy" is
the default vitdeploy ships, "library defaults" a session built the way a user would by hand)
loads the same artifact in a process of its own; the variants of one runtime run interleaved
(A B C A B C ...), each request after 100 ms of untimed runs, as ``vitdeploy bench`` does. Prints
p50 ms per batch size and the ratio to vitdeploy's default, and writes JSON.

    python benchmarks/session_settings.py [--model DeiT_tiny_patch16_224] [--batch-sizes 1,4,8]
                                          [--repeat 15] [--runtimes paddle,onnxruntime,openvino,lite]

Builds (cached under .cache/bench/MODEL): a seeded random checkpoint, its export, ONNX, OpenVINO
IR and a Lite x86 .nb (random weights: speed is measured, not accuracy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VITDEPLOY = [sys.executable, "-m", "vitdeploy.cli"]

# runtime -> (artifact, [(label, settings overrides, threads or None)])
VARIANTS: dict[str, tuple[str, list[tuple[str, dict, int | None]]]] = {
    "paddle": ("export", [
        ("vitdeploy (oneDNN, IR optim)", {}, None),
        ("oneDNN off (MKL kernels)", {"onednn": False}, None),
        ("IR optimisation off", {"ir_optim": False}, None),
        ("oneDNN and IR optimisation off", {"onednn": False, "ir_optim": False}, None),
    ]),
    "onnxruntime": ("onnx", [
        ("vitdeploy (all opts, cores, arena, spinning)", {}, None),
        ("library defaults", {"library": True}, None),
        ("graph optimisation basic", {"graph_optimization": "basic"}, None),
        ("memory arena off", {"mem_arena": False}, None),
        ("spinning off", {"spinning": False}, None),
    ]),
    "openvino": ("openvino", [
        ("vitdeploy (LATENCY hint)", {}, None),
        ("no hint (library default)", {"hint": "library"}, None),
        ("THROUGHPUT hint", {"hint": "THROUGHPUT"}, None),
        ("THROUGHPUT, 1 stream", {"hint": "THROUGHPUT", "streams": 1}, None),
        ("LATENCY, 2 streams", {"streams": 2}, None),
    ]),
    "lite": ("lite", [
        ("vitdeploy (threads = cores)", {}, None),
        ("1 thread", {}, 1),
    ]),
}


def sh(*args: object) -> None:
    subprocess.run([*VITDEPLOY, *map(str, args)], check=True, cwd=ROOT)


def build(model: str, work: Path) -> dict[str, Path]:
    """export, onnx, openvino, lite (x86): cached, rebuilt only when a manifest is missing."""
    from vitdeploy.models.loader import save_random_checkpoint

    arts = {name: work / name for name in ("export", "onnx", "openvino", "lite")}
    if all((d / "manifest.json").is_file() for d in arts.values()):
        return arts
    work.mkdir(parents=True, exist_ok=True)
    ckpt = save_random_checkpoint(model, work / "w.pdparams", seed=0)
    sh("export", model, "--weights", ckpt, "--out", arts["export"], "--force")
    for target in ("onnx", "openvino"):
        sh("convert", arts["export"], "--to", target, "--out", arts[target], "--force")
    sh("convert", arts["export"], "--to", "lite", "--arch", "x86", "--out", arts["lite"], "--force")
    return arts


def measure(runtime: str, artifact: Path, variants, batch_sizes: list[int], repeat: int,
            warmup: int) -> dict[str, dict]:
    """The variants of one runtime, each in its own bench process, interleaved per request."""
    from vitdeploy.bench import REWARM, REWARM_SECONDS, Child, wait_quiet
    from vitdeploy.runtimes import physical_cores

    children, info = [], {}
    try:
        for label, settings, threads in variants:
            child = Child(f"{runtime} {label}", threads or physical_cores())
            children.append(child)
            reply = child.ask("load", artifact=str(artifact), runtime=runtime,
                              threads=threads or physical_cores(), settings=settings)
            child.pids = reply["pids"]
            info[label] = {"settings": reply["settings"], "threads": threads or physical_cores(),
                           "load_s": reply["load_s"], "times": {b: [] for b in batch_sizes}}
        for b in batch_sizes:
            for child in children:
                child.ask("warmup", batch=b, runs=warmup)
            for _ in range(repeat):
                for (label, _s, _t), child in zip(variants, children, strict=True):
                    for other in children:  # the others' pools have gone quiet
                        wait_quiet(other.pids)
                    reply = child.ask("run", batch=b, runs=1, rewarm=REWARM, rewarm_s=REWARM_SECONDS)
                    info[label]["times"][b].extend(reply["times"])
    finally:
        for child in children:
            child.close()
    for row in info.values():
        row["p50_ms"] = {b: statistics.median(t) * 1e3 for b, t in row.pop("times").items()}
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_tiny_patch16_224")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runtimes", default=",".join(VARIANTS))
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    from vitdeploy.bench import machine_info
    from vitdeploy.runtimes import physical_cores

    work = ROOT / ".cache" / "bench" / args.model
    arts = build(args.model, work)
    machine = machine_info(physical_cores())
    results = {}
    for runtime in args.runtimes.split(","):
        art, variants = VARIANTS[runtime]
        print(f"measuring {runtime} ({len(variants)} variants) ...", file=sys.stderr, flush=True)
        results[runtime] = measure(runtime, arts[art], variants, batch_sizes, args.repeat, args.warmup)
    print(f"\n{args.model} on {machine['cpu']} ({machine['physical_cores']} physical cores, "
          f"ISA: {', '.join(machine['isa'])}); p50 ms over {args.repeat} interleaved runs\n")
    cols = " | ".join(f"bs={b}" for b in batch_sizes)
    print(f"| runtime | session settings | {cols} | vs vitdeploy (bs={batch_sizes[0]} / "
          f"bs={batch_sizes[-1]}) |")
    print("|---|---|" + "---:|" * (len(batch_sizes) + 1))
    for runtime, rows in results.items():
        base = next(iter(rows.values()))["p50_ms"]
        for label, row in rows.items():
            ms = " | ".join(f"{row['p50_ms'][b]:.1f}" for b in batch_sizes)
            lo, hi = batch_sizes[0], batch_sizes[-1]
            print(f"| {runtime} | {label} | {ms} | {row['p50_ms'][lo] / base[lo]:.2f}x / "
                  f"{row['p50_ms'][hi] / base[hi]:.2f}x |")
    out = work / "session_settings.json"
    out.write_text(json.dumps({"model": args.model, "machine": machine, "repeat": args.repeat,
                               "results": results}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
