"""`make zoo`: all 20 seed architectures through export -> ONNX / OpenVINO / Paddle Lite, with
fp32 parity (Lite: arm8 .nb fully placed, and its x86 twin run for parity; with --arm, the arm8
.nb and its weight-only int8 twin on Paddle Lite's own ARM kernels under emulation, and the
armv7 .nb of DeiT_tiny and LeViT_128S).

Seeded random weights (no pretrained weights can be downloaded here). Each model's row is cached
in .cache/zoo/<name>.json (ARM rows in <name>.arm.json), so an interrupted run resumes;
docs/zoo.md is rendered at the end (--arm-only: only its ARM section is rewritten).
Usage: python scripts/zoo_matrix.py [--only NAME ...] [--fresh] [--arm | --arm-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitdeploy.check.parity import run_parity  # noqa: E402
from vitdeploy.convert import convert  # noqa: E402
from vitdeploy.export import export_model  # noqa: E402
from vitdeploy.lite.naive_buffer import read_nb  # noqa: E402
from vitdeploy.models import list_models  # noqa: E402
from vitdeploy.models.loader import save_random_checkpoint  # noqa: E402

CACHE = ROOT / ".cache" / "zoo"
WORK = ROOT / ".cache" / "zoo-work"
DOC = ROOT / "docs" / "zoo.md"
RUNTIMES = ("onnxruntime", "openvino")
BATCHES = (1, 4)
NUM_INPUTS = 4


def run_model(name: str, index: int) -> dict:
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    variant = {"distillation": True} if name.startswith("LeViT") else {}
    ckpt = save_random_checkpoint(name, work / "random.pdparams", seed=index, **variant)
    t = time.perf_counter()
    exp = export_model(name, ckpt, work / "paddle")
    row = {"model": name, "export_s": time.perf_counter() - t,
           "export_verify_max_abs": exp.verify_max_abs_diff}
    artifacts = []
    for target in ("onnx", "openvino"):
        res = convert(work / "paddle", target, work / target)
        row[f"{target}_convert_s"] = res.seconds
        artifacts.append(work / target)
    report = run_parity(work / "paddle", artifacts, batch_sizes=BATCHES, num_random=NUM_INPUTS)
    for r in report.results:
        row[r.runtime] = {"max_abs": r.max_abs, "cosine_min": r.cosine_min,
                          "top1_agreement": r.top1_agreement, "batch_max_diff": r.batch_max_diff,
                          "precision": r.precision, "passed": r.passed}
    row["passed"] = report.passed
    shutil.rmtree(work, ignore_errors=True)
    return row


def _random_export(name: str, index: int, suffix: str) -> tuple[Path, Path]:
    """A fresh work folder with ``name``'s seeded random checkpoint exported to work/paddle."""
    work = WORK / f"{name}-{suffix}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    variant = {"distillation": True} if name.startswith("LeViT") else {}
    ckpt = save_random_checkpoint(name, work / "random.pdparams", seed=index, **variant)
    export_model(name, ckpt, work / "paddle")
    return work, ckpt


def run_lite(name: str, index: int) -> dict:
    work, _ = _random_export(name, index, "lite")
    res = convert(work / "paddle", "lite", work / "lite", arch="arm8")
    nb = read_nb(work / "lite" / "model.nb")
    report = run_parity(work / "paddle", [work / "lite"], batch_sizes=BATCHES, num_random=NUM_INPUTS)
    r = report.results[0]
    row = {"convert_s": res.seconds, "arm8_ops": len(nb.ops), "arm8_all_placed": not nb.unplaced("arm8"),
           "needs_extra": nb.needs_extra(), "passes": res.details["passes"], "max_abs": r.max_abs,
           "cosine_min": r.cosine_min, "top1_agreement": r.top1_agreement,
           "batch_max_diff": r.batch_max_diff, "parity_passed": r.passed}
    row["passed"] = row["arm8_all_placed"] and r.passed
    shutil.rmtree(work, ignore_errors=True)
    return row


ARMV7 = ("DeiT_tiny_patch16_224", "LeViT_128S")
# QEMU runs the NEON kernels at ~0.14 GMAC/s here (DeiT_tiny 7.6 s per image, ViT-L/384 ~20 min),
# so the emulated inputs scale with the model: 2 random inputs below SMALL_GMACS, else 1; the
# weight-only int8 .nb (same fp32 kernels after load-time dequantisation) below INT8_GMACS.
SMALL_GMACS = 5.0
INT8_GMACS = 20.0


def arm_plan(name: str) -> tuple[int, bool]:
    """(random inputs, run the int8 .nb) for ``name`` on the emulated ARM kernels."""
    from vitdeploy.zoo import count_flops

    gmacs = count_flops(name) / 1e9
    return (2 if gmacs < SMALL_GMACS else 1), gmacs < INT8_GMACS


def _arm_row(pd: Path, art: Path, x, expected, twin=None) -> dict:
    """``art`` on the ARM kernels against Paddle fp32 (``expected``), and against the x86 twin's
    outputs on the same inputs (``twin``), with the fp32 preset's verdict."""
    from vitdeploy.check.parity import compare
    from vitdeploy.precision import tolerance_for
    from vitdeploy.predictor import Predictor

    t = time.perf_counter()
    with Predictor(art, runtime="lite-arm", verify=False) as p:
        out = np.concatenate([p.predict_batch(x[i:i + 1]) for i in range(len(x))])
        stored = p.runtime.artifact_precision
    m = compare(expected, out)
    judged, tol = tolerance_for(stored, "fp32")
    row = {"max_abs": m["max_abs"], "cosine_min": m["cosine_min"],
           "top1_agreement": m["top1_agreement"], "seconds": time.perf_counter() - t,
           "precision": judged,
           "passed": m["cosine_min"] >= tol.min_cosine and m["top1_agreement"] >= tol.min_top1_agreement}
    if twin is not None:
        v = compare(twin, out)
        row["vs_twin"] = {"max_abs": v["max_abs"], "cosine_min": v["cosine_min"]}
        fp32 = tolerance_for("fp32", "fp32")[1]
        row["twin_agrees"] = v["cosine_min"] >= fp32.min_cosine and v["top1_agreement"] == 1.0
    return row


def run_arm(name: str, index: int) -> dict:
    """The arm8 .nb (and its weight-only int8 build) on the ARM kernels; armv7 for ARMV7."""
    from vitdeploy.predictor import Predictor

    work, ckpt = _random_export(name, index, "arm")
    inputs, int8 = arm_plan(name)
    with Predictor(work / "paddle", verify=False) as p:
        size = p.input_size
        x = np.random.default_rng(index).standard_normal((inputs, 3, size, size),
                                                         dtype=np.float32)
        expected = np.concatenate([p.predict_batch(x[i:i + 1]) for i in range(len(x))])
    top2 = np.sort(expected, axis=1)[:, -2:]
    row: dict = {"inputs": inputs, "top2_gap": float((top2[:, 1] - top2[:, 0]).min())}
    plan = [("arm8", None), *((("arm8", "int8"),) if int8 else ()),
            *((("armv7", None),) if name in ARMV7 else ())]
    for arch, quantize in plan:
        key = arch + (f"_{quantize}" if quantize else "")
        out = work / key
        convert(work / "paddle", "lite", out, arch=arch, quantize=quantize, weights=ckpt)
        with Predictor(out, runtime="lite", verify=False) as p:  # the x86 twin, same inputs
            twin = np.concatenate([p.predict_batch(x[i:i + 1]) for i in range(len(x))])
        row[key] = _arm_row(work / "paddle", out, x, expected, twin)
        print(f"    {key}: cosine {row[key]['cosine_min']:.7f}, {row[key]['seconds']:.0f} s",
              flush=True)
    row["passed"] = all(v["passed"] and v.get("twin_agrees", True) for v in row.values()
                        if isinstance(v, dict))
    shutil.rmtree(work, ignore_errors=True)
    return row


def render(rows: list[dict], arm_rows: list[dict]) -> str:
    lines = [
        "# Model zoo matrix",
        "",
        "Generated by `make zoo` (`scripts/zoo_matrix.py`): each of the 20 seed architectures with "
        "seeded random weights, exported with `vitdeploy export`, converted with `vitdeploy convert "
        "--to onnx` and `--to openvino`, then `vitdeploy parity` against Paddle Inference fp32 on "
        f"{NUM_INPUTS} random inputs at batch sizes {', '.join(map(str, BATCHES))} (worst case shown). "
        "fp32 pass = cosine >= 0.99999 and 100% top-1 agreement, and the same output at every "
        "batch size. OpenVINO runs with `INFERENCE_PRECISION_HINT=f32`. Times are wall-clock on "
        "a 2-core CPU machine.",
        "",
        "| model | export s | paddle: export vs eager | ORT max abs | ORT cosine | ORT top-1 | "
        "ONNX convert s | OV max abs | OV cosine | OV top-1 | OV convert s | fp32 parity |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        o, v = r["onnxruntime"], r["openvino"]
        lines.append(
            f"| {r['model']} | {r['export_s']:.1f} | {r['export_verify_max_abs']:.1e} | "
            f"{o['max_abs']:.1e} | {o['cosine_min']:.7f} | {o['top1_agreement']:.0%} | "
            f"{r['onnx_convert_s']:.1f} | {v['max_abs']:.1e} | {v['cosine_min']:.7f} | "
            f"{v['top1_agreement']:.0%} | {r['openvino_convert_s']:.1f} | "
            f"{'pass' if r['passed'] else '**FAIL**'} |")
    passed = sum(r["passed"] for r in rows)
    lines += ["", f"{passed} of {len(rows)} architectures pass fp32 parity on paddle, "
              "onnxruntime and openvino."]
    lite = [r for r in rows if "lite" in r]
    if lite:
        lines += [
            "", "## Paddle Lite", "",
            "`vitdeploy convert --to lite --arch arm8` (Paddle 2.6 legacy program, compatibility "
            "passes, opt 2.13rc0). The arm8 `.nb` is read back with `vitdeploy inspect` (every op "
            "on an ARM or Host kernel); its x86 twin, built by opt from the same legacy program, is "
            "run through Paddle Lite here for parity against Paddle Inference fp32 (same inputs and "
            "tolerances as above).", "",
            "| model | arm8 ops | all placed on ARM/Host | needs with_extra | passes applied | "
            "Lite x86 max abs | cosine | top-1 | convert s (arm8 + x86) | pass |",
            "|---|---:|:-:|---|---|---:|---:|---:|---:|:-:|",
        ]
        for r in lite:
            x = r["lite"]
            applied = ", ".join(f"{k} x{v}" for k, v in x["passes"].items() if v) or "none"
            lines.append(
                f"| {r['model']} | {x['arm8_ops']} | {'yes' if x['arm8_all_placed'] else '**no**'} | "
                f"{', '.join(x['needs_extra'])} | {applied} | {x['max_abs']:.1e} | "
                f"{x['cosine_min']:.7f} | {x['top1_agreement']:.0%} | {x['convert_s']:.1f} | "
                f"{'pass' if x['passed'] else '**FAIL**'} |")
        ok = sum(r["lite"]["passed"] for r in lite)
        lines += ["", f"{ok} of {len(lite)} architectures convert to a fully placed arm8 .nb and "
                  "pass fp32 parity through Lite x86."]
    if arm_rows:
        lines += _render_arm(arm_rows)
    return "\n".join(lines) + "\n"


def _render_arm(rows: list[dict]) -> list[str]:
    from vitdeploy.lite.arm import status

    b = status("armv8").build
    lines = [
        "", "## ARM kernels", "",
        "The arm8 `.nb` on Paddle Lite's own ARM (NEON) kernels: the light library built from the "
        "source vitdeploy ships (`vitdeploy lite setup --arm`, v2.13-rc, "
        f"{b.get('compiler', 'aarch64 g++')}), run by the `lite-arm` runtime under "
        "`qemu-aarch64-static`, against Paddle Inference fp32 on the same random inputs at batch 1, "
        "and against the x86 twin's outputs on those inputs (for int8: the twin with the same rounded "
        "weights). QEMU runs the NEON kernels at "
        "~0.14 GMAC/s on this 2-core host (DeiT_tiny 7.6 s per image, ViT-L/384 ~20 min), so "
        f"models under {SMALL_GMACS:g} GMACs get 2 inputs and the others 1 (column `inputs`). "
        "int8: the weight-only int8 `.nb` (judged with the int8 preset), run for models under "
        f"{INT8_GMACS:g} GMACs; its weights are dequantised at load, so it runs the same fp32 "
        "kernels as the arm8 column. armv7: `--arch armv7` on the armv7hf build, for "
        f"{' and '.join(ARMV7)}. Emulated seconds are not phone latency.", "",
        "| model | inputs | arm8 max abs | arm8 cosine | arm8 top-1 | ARM vs x86 twin max abs | "
        "arm8 int8 cosine | int8 top-1 | armv7 cosine (max abs) | emulated s (arm8) | pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        a = r["arm"]
        if "error" in a:
            lines.append(f"| {r['model']} | - | {a['error']} |||||||| **FAIL** |")
            continue
        f, q, v7 = a["arm8"], a.get("arm8_int8"), a.get("armv7")
        armv7 = f"{v7['cosine_min']:.7f} ({v7['max_abs']:.1e})" if v7 else "-"
        int8 = f"{q['cosine_min']:.5f} | {q['top1_agreement']:.0%}" if q else "- | -"
        lines.append(
            f"| {r['model']} | {a['inputs']} | {f['max_abs']:.1e} | {f['cosine_min']:.7f} | "
            f"{f['top1_agreement']:.0%} | {f['vs_twin']['max_abs']:.1e} | {int8} | {armv7} | "
            f"{f['seconds']:.0f} | {'pass' if a['passed'] else '**FAIL**'} |")
    ok = sum(r["arm"]["passed"] for r in rows)
    for r in rows:  # a failed int8 top-1 with the cosine in budget: say whether it is a near tie
        q, gap = r["arm"].get("arm8_int8"), r["arm"].get("top2_gap")
        if q and gap is not None and q["top1_agreement"] < 1.0 and "vs_twin" in q:
            lines += ["", f"{r['model']} int8: top-1 differs on an input whose fp32 top-2 gap is "
                      f"{gap:.3f}, below the int8 max abs {q['max_abs']:.3f} (random weights' "
                      f"near tie); the x86 twin's int8 output is within {q['vs_twin']['max_abs']:.1e} "
                      f"of the ARM one ({'agrees' if q.get('twin_agrees') else '**disagrees**'})."]
    lines += ["", f"{ok} of {len(rows)} architectures pass on the ARM kernels (fp32 preset against "
              "Paddle and against the x86 twin; the int8 preset for int8)."]
    return lines


def run_arm_rows(names: list[str], only: list[str] | None, fresh: bool, run: bool = True
                 ) -> list[dict]:
    """ARM rows, cached apart from the x86 rows in .cache/zoo/<name>.arm.json (hours to rebuild);
    ``run=False`` only reads the cache, so a plain `make zoo` keeps the ARM section."""
    rows = []
    for i, name in enumerate(names):
        cached = CACHE / f"{name}.arm.json"
        if run and (fresh or not cached.exists()) and (not only or name in only):
            print(f"[{i + 1}/{len(names)}] {name} on the ARM kernels ...", flush=True)
            try:
                arm = run_arm(name, i)
            except Exception as e:  # a finding for the table, not the end of the run
                arm = {"error": f"{type(e).__name__}: {e}"[:300], "passed": False}
                print(f"    ARM kernels failed: {arm['error']}", flush=True)
            cached.write_text(json.dumps({"model": name, "arm": arm}, indent=2))
        if cached.exists():
            rows.append(json.loads(cached.read_text()))
    return rows


def splice_arm(doc: str, arm_rows: list[dict]) -> str:
    """``doc`` with its ARM kernels section replaced by (or extended with) ``arm_rows``."""
    head = doc.split("\n## ARM kernels\n")[0].rstrip("\n")
    return head + "\n" + "\n".join(_render_arm(arm_rows)) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="Run only these models (others from the cache).")
    ap.add_argument("--fresh", action="store_true", help="Ignore cached rows.")
    ap.add_argument("--no-lite", action="store_true", help="Skip the Paddle Lite columns.")
    ap.add_argument("--arm", action="store_true", help="Add the ARM kernels section (needs "
                    "'vitdeploy lite setup --arm'; hours under emulation, resumable).")
    ap.add_argument("--arm-only", action="store_true", help="Only the ARM kernels section, "
                    "spliced into the existing docs/zoo.md (the x86 sections are left as they are).")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in list_models()]
    if args.arm_only:
        arm_rows = run_arm_rows(names, args.only, args.fresh)
        DOC.write_text(splice_arm(DOC.read_text(), arm_rows))
        print(f"wrote the ARM section of {DOC.relative_to(ROOT)} ({len(arm_rows)} rows)")
        return 0 if arm_rows and all(r["arm"]["passed"] for r in arm_rows) else 2
    rows = []
    for i, name in enumerate(names):
        cached = CACHE / f"{name}.json"
        todo = args.fresh or not cached.exists() or (args.only and name in args.only)
        if todo and (not args.only or name in args.only):
            print(f"[{i + 1}/{len(names)}] {name} ...", flush=True)
            cached.write_text(json.dumps(run_model(name, i), indent=2))
        if cached.exists():
            row = json.loads(cached.read_text())
            if "lite" not in row and (not args.only or name in args.only) and not args.no_lite:
                print(f"[{i + 1}/{len(names)}] {name} through Paddle Lite ...", flush=True)
                row["lite"] = run_lite(name, i)
                cached.write_text(json.dumps(row, indent=2))
            rows.append(row)
            lite = row.get("lite", {}).get("passed")
            print(f"  {name}: {'pass' if row['passed'] else 'FAIL'}"
                  f"{'' if lite is None else ', lite ' + ('pass' if lite else 'FAIL')}", flush=True)
    arm_rows = run_arm_rows(names, args.only, args.fresh, run=args.arm)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(rows, arm_rows))
    print(f"wrote {DOC.relative_to(ROOT)} ({len(rows)} rows)")
    ok = all(r["passed"] and r.get("lite", {}).get("passed", True) for r in rows)
    ok = ok and all(r["arm"]["passed"] for r in arm_rows)
    return 0 if rows and ok else 2


if __name__ == "__main__":
    sys.exit(main())
