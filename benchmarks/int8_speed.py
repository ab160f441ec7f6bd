"""int8 vs fp32 latency on the same runtime, with the CPU's ISA flags: docs/quantization.md's
speed table. Each artifact runs in its own process (sessions sharing a process slow each other:
ONNX Runtime's spinning pools, OpenVINO's TBB), and the processes are interleaved in rounds
(A B C A B C ...) so drifting machine load favours none; the median over rounds is reported.

    python benchmarks/int8_speed.py [--model DeiT_base_patch16_224] [--batch-sizes 1,8]
                                    [--repeat 20] [--rounds 3]

Builds (cached under .cache/bench-int8/MODEL): a seeded random checkpoint, its export, ONNX fp32 /
static int8 / dynamic int8 and OpenVINO fp32 / NNCF int8, calibrated on seeded noise images
(random weights: speed, not accuracy, is measured here). Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VITDEPLOY = [sys.executable, "-m", "vitdeploy.cli"]


def cpu() -> dict:
    from vitdeploy.bench import machine_info
    from vitdeploy.runtimes import physical_cores

    info = machine_info(physical_cores())
    return {"model": info["cpu"], "isa": info["isa"], "physical_cores": info["physical_cores"],
            "libraries": info["libraries"]}


def sh(*args: object) -> None:
    subprocess.run([*VITDEPLOY, *map(str, args)], check=True, cwd=ROOT)


def build(model: str, work: Path, calib_size: int) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    from vitdeploy.models.loader import save_random_checkpoint

    arts = {"onnx fp32": work / "onnx", "onnx int8": work / "onnx_int8",
            "onnx dynamic-int8": work / "onnx_dyn", "openvino fp32": work / "ov",
            "openvino int8": work / "ov_int8"}
    if all((d / "manifest.json").is_file() for d in arts.values()):
        return arts
    work.mkdir(parents=True, exist_ok=True)
    ckpt = save_random_checkpoint(model, work / "w.pdparams", seed=0)
    sh("export", model, "--weights", ckpt, "--out", work / "export", "--force")
    calib = work / "calib"
    calib.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(calib_size):  # photo-sized noise: goes through the model's own preprocessing
        Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(calib / f"{i:04d}.png")
    sh("convert", work / "export", "--to", "onnx", "--out", arts["onnx fp32"], "--force")
    sh("convert", work / "export", "--to", "onnx", "--quantize", "int8", "--calib", calib,
       "--out", arts["onnx int8"], "--force")
    sh("convert", work / "export", "--to", "onnx", "--quantize", "dynamic-int8",
       "--out", arts["onnx dynamic-int8"], "--force")
    sh("convert", work / "export", "--to", "openvino", "--out", arts["openvino fp32"], "--force")
    sh("convert", work / "export", "--to", "openvino", "--quantize", "int8", "--calib", calib,
       "--out", arts["openvino int8"], "--force")
    return arts


def measure(runtime: str, directory: str, batch_sizes: list[int], repeat: int) -> dict:
    """In this (child) process: one artifact, warmup excluded, median ms per batch size, and its
    cosine to the fp32 artifact of the same runtime on seeded inputs (outputs saved for that)."""
    import numpy as np

    from vitdeploy import Predictor

    out: dict = {}
    with Predictor(directory, runtime=runtime) as p:
        size = p.input_size
        for b in batch_sizes:
            x = np.random.default_rng(b).standard_normal((b, 3, size, size)).astype(np.float32)
            for _ in range(3):
                p.predict_batch(x)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                p.predict_batch(x)
                times.append((time.perf_counter() - t0) * 1e3)
            out[str(b)] = statistics.median(times)
        x = np.random.default_rng(99).standard_normal((8, 3, size, size)).astype(np.float32)
        np.save(Path(directory) / ".bench_logits.npy", p.predict_batch(x))
        out["precision"] = [p.runtime.artifact_precision, p.runtime.compute_precision]
    return out


def cosine_min(a, b) -> float:
    import numpy as np

    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_base_patch16_224")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.child:  # one artifact in its own process
        job = json.loads(args.child)
        print(json.dumps(measure(job["runtime"], job["dir"], batch_sizes, args.repeat)))
        return
    import numpy as np

    work = ROOT / ".cache" / "bench-int8" / args.model
    arts = build(args.model, work, args.calib_size)
    machine = cpu()
    rounds: dict[str, list[dict]] = {name: [] for name in arts}
    for _ in range(args.rounds):
        for name, d in arts.items():
            runtime = "onnxruntime" if name.startswith("onnx") else "openvino"
            job = json.dumps({"runtime": runtime, "dir": str(d)})
            proc = subprocess.run([sys.executable, __file__, "--child", job, "--batch-sizes",
                                   args.batch_sizes, "--repeat", str(args.repeat)],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
            rounds[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {}
    for name, runs in rounds.items():
        fp32 = np.load(arts[name.split()[0] + " fp32"] / ".bench_logits.npy")
        results[name] = {str(b): statistics.median(r[str(b)] for r in runs) for b in batch_sizes}
        results[name]["precision"] = runs[0]["precision"]
        results[name]["cosine_min"] = cosine_min(fp32, np.load(arts[name] / ".bench_logits.npy"))
    print(f"\n{args.model} on {machine['model']} ({machine['physical_cores']} physical cores; "
          f"ISA: {', '.join(machine['isa']) or 'none of the AVX-512/VNNI/AMX extensions'})\n")
    cols = " | ".join(f"bs={b} ms" for b in batch_sizes)
    print(f"| artifact | stored / computed | {cols} | " +
          " | ".join(f"speed-up bs={b}" for b in batch_sizes) + " | cosine to fp32 |")
    print("|---|---|" + "---:|" * (2 * len(batch_sizes) + 1))
    for name, r in results.items():
        base = results[name.split()[0] + " fp32"]
        ms = " | ".join(f"{r[str(b)]:.1f}" for b in batch_sizes)
        ratio = " | ".join(f"{base[str(b)] / r[str(b)]:.2f}x" for b in batch_sizes)
        print(f"| {name} | {r['precision'][0]} / {r['precision'][1]} | {ms} | {ratio} | "
              f"{r['cosine_min']:.4f} |")
    out = work / "int8_speed.json"
    out.write_text(json.dumps({"model": args.model, "machine": machine, "repeat": args.repeat,
                               "rounds": args.rounds, "results": results}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
