"""The seed latency table on this machine: docs/benchmarks.md's DeiT tables.

Every runtime and precision of one model in one ``vitdeploy bench`` run (each artifact in its own
process, runs interleaved), with the ratio of each row to Paddle Inference and to the machine's
fp32 GEMM rate measured in the same run, and bench's own timing overhead.

    python benchmarks/deit_latency.py [--model DeiT_tiny_patch16_224] [--batch-sizes 1,4,8]
                                      [--repeat 15] [--json OUT.json]

Artifacts (cached under .cache/bench-int8/MODEL, shared with int8_speed.py): a seeded random
checkpoint, its export (Paddle Inference), ONNX fp32 / static int8 / dynamic int8, OpenVINO IR
fp32 (computed in fp32 and in bf16 where the CPU has it) / NNCF int8, and a Lite x86 .nb.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_speed import ROOT, build, sh  # noqa: E402  (the same cached artifacts)


def artifacts(model: str) -> list[Path]:
    work = ROOT / ".cache" / "bench-int8" / model
    arts = build(model, work, calib_size=64)
    lite = work / "lite_x86"
    if not (lite / "manifest.json").is_file():
        sh("convert", work / "export", "--to", "lite", "--arch", "x86", "--out", lite, "--force")
    return [work / "export", arts["onnx fp32"], arts["onnx int8"], arts["onnx dynamic-int8"],
            arts["openvino fp32"], arts["openvino int8"], lite]


def label(row: dict) -> str:
    name = Path(row["artifact"]).name
    return {"export": "export", "onnx": "onnx", "onnx_int8": "onnx int8 (static QDQ)",
            "onnx_dyn": "onnx dynamic-int8", "ov": "openvino IR", "ov_int8": "openvino IR int8 (NNCF)",
            "lite_x86": "lite x86 .nb"}.get(name, name)


def table(report: dict) -> str:
    rows, sizes = report["results"], report["settings"]["batch_sizes"]
    def key(r: dict) -> tuple:
        return r["artifact"], r["runtime"], r["compute_precision"], r.get("requested_precision")

    by = {(*key(r), r["batch_size"]): r for r in rows}
    paddle = {r["batch_size"]: r["p50_ms"] for r in rows if r["runtime"] == "paddle"}
    lines = [f"| artifact | runtime | stored / computed | {' | '.join(f'bs={b} ms' for b in sizes)} "
             f"| {' | '.join(f'vs Paddle bs={b}' for b in sizes)} | of GEMM bs={sizes[-1]} |",
             "|---|---|---|" + "---:|" * (2 * len(sizes) + 1)]
    order = list(dict.fromkeys(key(r) for r in rows))
    for k in order:
        cells = [by[(*k, b)] for b in sizes]
        first, computed, asked = cells[0], k[2], k[3]
        if asked not in (None, computed):  # an int8 IR computes int8 whatever is asked
            computed += f" ({asked} asked)"
        ms = " | ".join(f"{c['p50_ms']:.1f}" for c in cells)
        ratio = " | ".join(f"{paddle[b] / c['p50_ms']:.2f}x" for b, c in zip(sizes, cells, strict=True))
        gemm = cells[-1]["of_gemm"]
        lines.append(f"| {label(first)} | {k[1]} | {first['artifact_precision']} / {computed} | "
                     f"{ms} | {ratio} | {gemm:.0%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_tiny_patch16_224")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", type=Path, help="also write bench's JSON report here")
    args = ap.parse_args()
    arts = artifacts(args.model)
    cmd = [sys.executable, "-m", "vitdeploy.cli", "bench", *map(str, arts), "--batch-sizes",
           args.batch_sizes, "--repeat", str(args.repeat), "--precision", "fp32",
           "--precision", "bf16", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr.strip())
    report = json.loads(proc.stdout)
    m = report["machine"]
    print(f"\n{args.model} on {m['cpu']} ({m['physical_cores']} physical cores, {report['threads']} "
          f"threads; ISA: {', '.join(m['isa'])}); fp32 GEMM {report['gemm_gflops']:.0f} GFLOP/s; "
          f"p50 over {args.repeat} interleaved runs\n")
    print(table(report))
    first = min(r["p50_ms"] for r in report["results"] if r["batch_size"] == min(
        report["settings"]["batch_sizes"]))
    print(f"\nbench's own timing overhead: {report['overhead_ms'] * 1e3:.1f} µs per run "
          f"({report['overhead_ms'] / first:.3%} of the fastest bs=1 run)")
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
