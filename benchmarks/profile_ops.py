"""Where a ViT's batch-1 latency goes, per operator type: docs/benchmarks.md's profiles.

ONNX Runtime (its session profiler) and OpenVINO (per-layer PERF_COUNT) on the same model, each in
its own process, with vitdeploy's session settings. Shows the share of matrix layers
(MatMul/Gemm/FullyConnected) against the rest (LayerNorm, Softmax, GELU, transposes, adds...),
which bounds what any GEMM speed-up can gain at batch 1.

    python benchmarks/profile_ops.py [--model DeiT_tiny_patch16_224] [--batch 1] [--runs 50]

Uses the artifacts benchmarks/int8_speed.py and deit_latency.py build (.cache/bench-int8/MODEL).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MATRIX = {"MatMul", "Gemm", "FusedMatMul", "FullyConnected", "Convolution", "Conv", "MatMulNBits",
          "QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "ScaledAttn"}


def _input(size: int, batch: int):
    import numpy as np

    return np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)


def profile_ort(model: Path, batch: int, runs: int) -> dict[str, float]:
    import onnxruntime as ort

    from vitdeploy.runtimes import physical_cores

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = physical_cores()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = _input(inp.shape[-1] if isinstance(inp.shape[-1], int) else 224, batch)
    for _ in range(5):
        sess.run(None, {inp.name: x})
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, {inp.name: x})
    wall = (time.perf_counter() - t0) / runs * 1e3
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3
    total_runs = runs + 5
    return {"wall_ms": wall, **{k: v / total_runs for k, v in per_op.items()}}


def profile_ov(model: Path, batch: int, runs: int) -> dict[str, float]:
    import openvino as ov

    from vitdeploy.runtimes import physical_cores

    core = ov.Core()
    compiled = core.compile_model(str(model), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": physical_cores(),
        "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    req = compiled.create_infer_request()
    size = compiled.input(0).get_partial_shape()[-1]
    x = _input(size.get_length() if size.is_static else 224, batch)
    for _ in range(5):
        req.infer({0: x})
    per_op: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    for _ in range(runs):
        req.infer({0: x})
        for info in req.get_profiling_info():
            per_op[info.node_type] += info.real_time.total_seconds() * 1e3
    wall = (time.perf_counter() - t0) / runs * 1e3  # includes reading the counters
    return {"wall_ms": wall, **{k: v / runs for k, v in per_op.items()}}


def summary(name: str, prof: dict[str, float]) -> list[str]:
    wall = prof.pop("wall_ms")
    total = sum(prof.values())
    matrix = sum(v for k, v in prof.items() if k in MATRIX)
    lines = [f"**{name}**: {total:.1f} ms in kernels per run ({wall:.1f} ms wall); matrix layers "
             f"{matrix:.1f} ms = {matrix / total:.0%}", "", "| op type | ms per run | share |",
             "|---|---:|---:|"]
    for k, v in sorted(prof.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"| {k} | {v:.2f} | {v / total:.0%} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_tiny_patch16_224")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--child", choices=("ort", "ov"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = ROOT / ".cache" / "bench-int8" / args.model
    if args.child:  # one runtime per process: their thread pools would slow each other
        fn = profile_ort if args.child == "ort" else profile_ov
        model = work / "onnx" / "model.onnx" if args.child == "ort" else work / "ov" / "model.xml"
        print(json.dumps(fn(model, args.batch, args.runs)))
        return
    if not (work / "onnx").is_dir():
        sys.exit(f"no artifacts in {work}: run benchmarks/deit_latency.py --model {args.model} first")
    for child, name in (("ort", "ONNX Runtime"), ("ov", "OpenVINO (f32)")):
        out = subprocess.run([sys.executable, __file__, "--child", child, "--model", args.model,
                              "--batch", str(args.batch), "--runs", str(args.runs)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        print("\n".join(summary(f"{name}, {args.model}, batch {args.batch}",
                                json.loads(out.stdout.strip().splitlines()[-1]))), "\n")


if __name__ == "__main__":
    main()
