"""int8 vs fp32 latency on the same runtime, interleaved in one process per runtime (runtimes
sharing a process slow each other), with the CPU's ISA flags: docs/quantization.md's speed table.

    python benchmarks/int8_speed.py [--model DeiT_base_patch16_224] [--batch-sizes 1,8] [--repeat 20]

Builds (cached under .cache/bench-int8/MODEL): a seeded random checkpoint, its export, ONNX fp32 /
static int8 / dynamic int8 and OpenVINO fp32 / NNCF int8, calibrated on seeded noise images
(random weights: speed, not accuracy, is measured here). Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VITDEPLOY = [sys.executable, "-m", "vitdeploy.cli"]
ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "avx_vnni")


def cpu() -> dict:
    flags: set[str] = set()
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
        elif line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
    from vitdeploy.runtimes import physical_cores

    return {"model": model, "isa": [f for f in ISA if f in flags], "physical_cores": physical_cores()}


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


def measure(runtime: str, dirs: dict[str, str], batch_sizes: list[int], repeat: int) -> dict:
    """In this (child) process: every artifact on one runtime, runs interleaved A B C A B C."""
    import numpy as np

    from vitdeploy import Predictor

    preds = {name: Predictor(d, runtime=runtime) for name, d in dirs.items()}
    size = next(iter(preds.values())).input_size
    out: dict = {name: {} for name in preds}
    for b in batch_sizes:
        x = np.random.default_rng(b).standard_normal((b, 3, size, size)).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in preds}
        for p in preds.values():  # warmup
            for _ in range(3):
                p.predict_batch(x)
        for _ in range(repeat):
            for name, p in preds.items():
                t0 = time.perf_counter()
                p.predict_batch(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
        for name in preds:
            out[name][str(b)] = statistics.median(times[name])
    ref = next(iter(preds.values()))
    x = np.random.default_rng(99).standard_normal((8, 3, size, size)).astype(np.float32)
    y = ref.predict_batch(x)
    for name, p in preds.items():
        z = p.predict_batch(x)
        cos = (y * z).sum(1) / (np.linalg.norm(y, axis=1) * np.linalg.norm(z, axis=1))
        out[name]["cosine_min"] = float(cos.min())
        out[name]["precision"] = [p.runtime.artifact_precision, p.runtime.compute_precision]
    for p in preds.values():
        p.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_base_patch16_224")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.child:  # one runtime in its own process
        job = json.loads(args.child)
        print(json.dumps(measure(job["runtime"], job["dirs"], batch_sizes, args.repeat)))
        return
    work = ROOT / ".cache" / "bench-int8" / args.model
    arts = build(args.model, work, args.calib_size)
    machine = cpu()
    results = {}
    for runtime in ("onnxruntime", "openvino"):
        dirs = {k: str(v) for k, v in arts.items() if k.startswith(runtime.replace("runtime", ""))}
        job = json.dumps({"runtime": runtime, "dirs": dirs})
        proc = subprocess.run([sys.executable, __file__, "--child", job, "--batch-sizes",
                               args.batch_sizes, "--repeat", str(args.repeat)],
                              capture_output=True, text=True, check=True, cwd=ROOT)
        results.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"\n{args.model} on {machine['model']} ({machine['physical_cores']} physical cores; "
          f"ISA: {', '.join(machine['isa']) or 'none of ' + ', '.join(ISA)})\n")
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
                               "results": results}, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
