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
    export_dir = OUT / "export"
    first_of_each = [sorted(d.glob("*.png"))[0].relative_to(ROOT) for d in sorted(test_dir.iterdir())]
    print(f"Sample: {sample['model']} trained on scikit-learn digits "
          f"(top-1 {sample['top1']:.4f} recorded at training time)")
    step("export", sample["model"], "--weights", sample["weights"], "--labels", sample["labels"],
         "--out", export_dir.relative_to(ROOT), "--force")
    step("predict", export_dir.relative_to(ROOT), *first_of_each, "--topk", "3")
    step("eval", export_dir.relative_to(ROOT), "--data", sample["test_dir"], "--min-top1", "0.97")
    onnx_dir, ov_dir = OUT / "onnx", OUT / "openvino"
    step("convert", export_dir.relative_to(ROOT), "--to", "onnx", "--out", onnx_dir.relative_to(ROOT),
         "--force")
    step("convert", export_dir.relative_to(ROOT), "--to", "openvino", "--out",
         ov_dir.relative_to(ROOT), "--force")
    lite_dir = OUT / "lite_arm8"
    step("convert", export_dir.relative_to(ROOT), "--to", "lite", "--arch", "arm8", "--out",
         lite_dir.relative_to(ROOT), "--force")
    step("inspect", (lite_dir / "model.nb").relative_to(ROOT))
    step("parity", export_dir.relative_to(ROOT), onnx_dir.relative_to(ROOT),
         ov_dir.relative_to(ROOT), lite_dir.relative_to(ROOT), "--images", sample["test_dir"])


if __name__ == "__main__":
    main()
