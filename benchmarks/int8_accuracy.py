"""int8 recipe vs naive post-training quantization on a ViT: cosine of the logits to fp32, for
docs/quantization.md. Seeded random weights (no pretrained weights can be downloaded here), so
calibration and measurement use seeded N(0, 1) inputs ("calibration-style" inputs): 64 to
calibrate, 32 others to measure.

    python benchmarks/int8_accuracy.py [--model DeiT_tiny_patch16_224]
    python benchmarks/int8_accuracy.py --sample   # the trained sample: top-1 on its 360 held-out
                                                  # images, calibrated on samples/digits/calib

Naive means each tool's defaults with nothing ViT-aware: ONNX Runtime ``quantize_static`` (MinMax,
every op type, QDQ) and NNCF ``quantize`` without ``model_type``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="DeiT_tiny_patch16_224")
    ap.add_argument("--sample", action="store_true", help="the trained digits sample instead")
    args = ap.parse_args()

    from vitdeploy.models import get_config
    from vitdeploy.models.loader import save_random_checkpoint
    from vitdeploy.quantize.calib import Calibration
    from vitdeploy.quantize.onnxruntime import quantize_onnx
    from vitdeploy.quantize.openvino import quantize_ir
    from vitdeploy.runtimes.onnxruntime import OnnxRuntime
    from vitdeploy.runtimes.openvino import OpenVinoRuntime

    work = Path(tempfile.mkdtemp(prefix="int8acc-"))
    vd = [sys.executable, "-m", "vitdeploy.cli"]
    labels = None
    if args.sample:
        from vitdeploy.check.evaluate import labelled_data
        from vitdeploy.preprocess import preprocess_batch
        from vitdeploy.quantize.calib import load_calibration

        sample = json.loads((ROOT / "samples" / "sample.json").read_text())
        args.model, ckpt = sample["model"], ROOT / sample["weights"]
        cfg = get_config(args.model).preprocess
        calib = load_calibration(ROOT / sample["calib_dir"], cfg)
        calib_x = calib.batch
        pairs = labelled_data(ROOT / sample["test_dir"], [str(i) for i in range(10)])
        test_x = preprocess_batch([p for p, _ in pairs], cfg)
        labels = np.array([c for _, c in pairs])
    else:
        size = get_config(args.model).input_size
        rng = np.random.default_rng(0)
        calib_x = rng.standard_normal((64, 3, size, size)).astype(np.float32)
        test_x = rng.standard_normal((32, 3, size, size)).astype(np.float32)
        calib = Calibration(calib_x, [f"normal_{i}" for i in range(64)], "seeded N(0,1), seed 0")
        ckpt = save_random_checkpoint(args.model, work / "w.pdparams", seed=0)
    subprocess.run([*vd, "export", args.model, "--weights", str(ckpt), "--out", str(work / "pd")],
                   check=True, capture_output=True)
    for to in ("onnx", "openvino"):
        subprocess.run([*vd, "convert", str(work / "pd"), "--to", to, "--out", str(work / to)],
                       check=True, capture_output=True)

    def run(cls, path: Path) -> np.ndarray:
        with cls(path) as rt:
            return np.concatenate([rt.predict(test_x[i:i + 8]) for i in range(0, len(test_x), 8)])

    rows = {}
    ref = run(OnnxRuntime, work / "onnx" / "model.onnx")
    t0 = time.perf_counter()
    quantize_onnx(work / "onnx" / "model.onnx", work / "ort_int8.onnx", "int8", calib)
    rows["onnxruntime int8 (vitdeploy recipe)"] = (run(OnnxRuntime, work / "ort_int8.onnx"),
                                                   time.perf_counter() - t0)
    t0 = time.perf_counter()
    quantize_onnx(work / "onnx" / "model.onnx", work / "ort_dyn.onnx", "dynamic-int8")
    rows["onnxruntime dynamic-int8"] = (run(OnnxRuntime, work / "ort_dyn.onnx"), time.perf_counter() - t0)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):
            if self.i >= len(calib_x):
                return None
            self.i += 8
            return {"x": calib_x[self.i - 8:self.i]}

    t0 = time.perf_counter()
    quantize_static(str(work / "onnx" / "model.onnx"), str(work / "ort_naive.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ)
    rows["onnxruntime naive (quantize_static defaults: MinMax, all ops)"] = (
        run(OnnxRuntime, work / "ort_naive.onnx"), time.perf_counter() - t0)

    t0 = time.perf_counter()
    quantize_ir(work / "openvino" / "model.xml", work / "ov_int8" / "model.xml", "int8", calib)
    rows["openvino int8 (vitdeploy recipe: NNCF transformer)"] = (
        run(OpenVinoRuntime, work / "ov_int8" / "model.xml"), time.perf_counter() - t0)
    import nncf
    import openvino as ov

    t0 = time.perf_counter()
    model = ov.Core().read_model(str(work / "openvino" / "model.xml"))
    naive = nncf.quantize(model, nncf.Dataset([calib_x[i:i + 1] for i in range(len(calib_x))]),
                          subset_size=len(calib_x))
    ov.save_model(naive, str(work / "ov_naive" / "model.xml"), compress_to_fp16=False)
    rows["openvino naive (nncf.quantize defaults, no model_type)"] = (
        run(OpenVinoRuntime, work / "ov_naive" / "model.xml"), time.perf_counter() - t0)

    if labels is None:
        print(f"\n{args.model}, seeded random weights; cosine of logits to fp32 (ONNX Runtime "
              f"fp32) on 32 seeded N(0,1) inputs, calibrated on 64 others\n")
    else:
        print(f"\n{args.model} (trained sample): top-1 on {len(labels)} held-out images, fp32 "
              f"{(ref.argmax(1) == labels).mean():.4f}; calibrated on {len(calib_x)} training images\n")
    print("| recipe | cosine mean | cosine min | top-1 | agreement with fp32 | quantize s |")
    print("|---|---:|---:|---:|---:|---:|")
    record = {}
    for name, (out, secs) in rows.items():
        c = cosines(ref, out)
        top1 = float((out.argmax(1) == labels).mean()) if labels is not None else None
        agree = float((out.argmax(1) == ref.argmax(1)).mean())
        record[name] = {"cosine_mean": float(c.mean()), "cosine_min": float(c.min()),
                        "top1": top1, "agreement": agree, "seconds": secs}
        print(f"| {name} | {c.mean():.5f} | {c.min():.5f} | "
              f"{'-' if top1 is None else f'{top1:.4f}'} | {agree:.1%} | {secs:.1f} |")
    dest = ROOT / ".cache" / f"int8_accuracy_{args.model}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
