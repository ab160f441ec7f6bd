"""`make demo`: the main job on the bundled sample, shown as the commands a user types."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-out"
VITDEPLOY = [sys.executable, "-m", "vitdeploy.cli"]


def step(*args: str) -> None:
    print(f"\n$ vitdeploy {' '.join(shlex.quote(str(a)) for a in args)}", flush=True)
    code = subprocess.call([*VITDEPLOY, *map(str, args)], cwd=ROOT)
    if code != 0:
        sys.exit(code)


def main() -> None:
    sample = json.loads((ROOT / "samples" / "sample.json").read_text())
    test_dir = ROOT / sample["test_dir"]
    rel = {name: (OUT / name).relative_to(ROOT) for name in (
        "export", "onnx", "openvino", "lite_arm8", "onnx_int8", "onnx_dynamic_int8",
        "openvino_int8", "lite_arm8_int8", "lite_armv7")}
    first_of_each = [sorted(d.glob("*.png"))[0].relative_to(ROOT) for d in sorted(test_dir.iterdir())]
    print(f"Sample: {sample['model']} trained on scikit-learn digits "
          f"(top-1 {sample['top1']:.4f} recorded at training time)")
    step("export", sample["model"], "--weights", sample["weights"], "--labels", sample["labels"],
         "--out", rel["export"], "--force")
    step("predict", rel["export"], *first_of_each, "--topk", "3")
    step("convert", rel["export"], "--to", "onnx", "--out", rel["onnx"], "--force")
    step("convert", rel["export"], "--to", "openvino", "--out", rel["openvino"], "--force")
    step("convert", rel["export"], "--to", "lite", "--arch", "arm8", "--out", rel["lite_arm8"],
         "--force")
    step("inspect", rel["lite_arm8"] / "model.nb")
    # int8: calibrated on the training split's calib_dir, never on the evaluation images
    step("convert", rel["export"], "--to", "onnx", "--quantize", "int8", "--calib",
         sample["calib_dir"], "--out", rel["onnx_int8"], "--force")
    step("convert", rel["export"], "--to", "onnx", "--quantize", "dynamic-int8",
         "--out", rel["onnx_dynamic_int8"], "--force")
    step("convert", rel["export"], "--to", "openvino", "--quantize", "int8", "--calib",
         sample["calib_dir"], "--out", rel["openvino_int8"], "--force")
    step("convert", rel["export"], "--to", "lite", "--arch", "arm8", "--quantize", "int8",
         "--out", rel["lite_arm8_int8"], "--force")
    step("convert", rel["export"], "--to", "lite", "--arch", "armv7", "--out", rel["lite_armv7"],
         "--force")
    # each result is also saved (--save) for the report at the end
    out = OUT.relative_to(ROOT)
    step("parity", *rel.values(), "--images", sample["test_dir"], "--save", out / "parity.json")
    step("eval", *rel.values(), "--data", sample["test_dir"], "--min-top1", "0.97",
         "--save", out / "eval.json")
    # bulk: every test image to Parquet through Ray Data (a local Ray, an actor pool): the
    # same rows as `predict --json`; docs/bulk.md
    step("predict", rel["onnx"], sample["test_dir"], "--out", out / "preds.parquet", "--ray",
         "auto", "--force")
    # Lite .nb files run on Paddle Lite's ARM kernels under QEMU once 'vitdeploy lite setup --arm'
    # (and --arm armv7) built them, else on their x86 twins (the rows say which).
    # speed: each artifact in its own process, runs interleaved
    step("bench", *(rel[n] for n in ("export", "onnx", "openvino", "onnx_int8", "openvino_int8",
                                     "lite_arm8")), "--repeat", "5", "--save", out / "bench.json")
    # the phone bundle: .nb, labels, self-check data, C++ demo, build/run scripts (its table lists
    # every file with its size, and the total)
    step("package", rel["export"], "--target", "android-arm8", "--images", sample["test_dir"],
         "--out", (OUT / "demo-android-arm8.zip").relative_to(ROOT), "--force")
    # the search: every runtime x precision this CPU can run, on the hard sample (fp32 top-1
    # ~90 %, where int8 recipes lose measurably), the winner within 0.5 points in opt-hard/best
    hard = json.loads((ROOT / "samples" / "hard_sample.json").read_text())
    hard_export = (OUT / "hard_export").relative_to(ROOT)
    step("export", hard["model"], "--weights", hard["weights"], "--labels", hard["labels"],
         "--out", hard_export, "--force")
    step("optimize", hard_export, "--eval-data", hard["test_dir"], "--calib", hard["calib_dir"],
         "--max-drop", "0.5", "--out", out / "opt-hard")
    step("report", out, "--out", out / "report.html", "--force")
    print(f"\nReport: {OUT / 'report.html'} (Markdown twin: {OUT / 'report.md'})")
    print(f"Phone bundle: {OUT / 'demo-android-arm8.zip'} (unzip it and read its README.md)")


if __name__ == "__main__":
    main()
