"""The report's tables, from the manifests and the saved results, formatted as the CLI prints
them. A part that was not run becomes a section saying how to produce it."""

from __future__ import annotations

from typing import Any

from .collect import Artifact, Run
from .document import Facts, Para, Section, Table, num

MISSING = {
    "parity": "vitdeploy parity REF_DIR ARTIFACT... --save {dir}/parity.json",
    "eval": "vitdeploy eval ARTIFACT... --data DATA --save {dir}/eval.json",
    "bench": "vitdeploy bench ARTIFACT... --save {dir}/bench.json",
}


def missing(kind: str, run: Run) -> Para:
    return Para("Not run. Save it with", MISSING[kind].format(dir=run.path.as_posix()), "missing")


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def _format(m: dict) -> str:
    fmt = str(m.get("format") or "-")
    arch = (m.get("lite") or {}).get("arch") if isinstance(m.get("lite"), dict) else None
    return f"{fmt} {arch}" if arch else fmt


def _quantization(m: dict) -> str:
    q = m.get("quantization")
    if isinstance(q, dict):
        parts = [str(q.get("mode") or "quantized")]
        recipe = q.get("recipe") if isinstance(q.get("recipe"), dict) else {}
        if recipe.get("tool"):
            parts[0] += f" ({recipe['tool']})"
        calib = q.get("calibration")
        parts.append(f"{calib.get('count')} calibration images" if isinstance(calib, dict)
                     else "no calibration")
        if q.get("kept_float"):
            parts.append(f"{len(q['kept_float'])} layers kept float")
        return ", ".join(parts)
    conv = m.get("conversion") if isinstance(m.get("conversion"), dict) else {}
    if conv.get("quantize"):  # Lite: weight-only
        return f"{conv['quantize']} weights only"
    return "-"


def _options(m: dict) -> str:
    opts = m.get("options")
    if not isinstance(opts, dict):  # an export: what its graph computes
        out = [f"{m['num_classes']} classes"] if m.get("num_classes") else []
        return ", ".join(out + (["softmax"] if m.get("softmax") else [])) or "-"
    shown = []
    for k, v in sorted(opts.items()):
        if k == "quantize" or v is None or v is False:  # quantization has its own column
            continue
        shown.append(k if v is True else f"{k} {v}")
    return ", ".join(shown) or "-"


def _source(m: dict) -> str:
    src = m.get("source") if isinstance(m.get("source"), dict) else {}
    return str(src.get("dir") or src.get("weights") or src.get("path") or "-")


def artifacts_section(run: Run) -> Section:
    sec = Section("artifacts", "Export and conversion")
    if not run.artifacts:
        sec.present = False
        sec.blocks.append(Para(f"No artifact directories (with manifest.json) in {run.path}. "
                               "Export or convert into it, e.g.",
                               f"vitdeploy convert EXPORT --to onnx --out {run.path.as_posix()}/onnx",
                               "missing"))
        return sec
    rows = [_artifact_row(a) for a in run.artifacts]
    sec.blocks.append(Table(["artifact", "format", "model", "stored", "quantization", "options",
                             "size MB", "source"], rows, numeric={6},
                            caption=f"{len(rows)} artifact directories in {run.path}"))
    return sec


def _artifact_row(a: Artifact) -> list[str]:
    m = a.manifest
    stored = m.get("precision") or ("fp32" if m.get("format") == "paddle" else "-")
    return [a.name, _format(m), str(m.get("model") or "-"), str(stored), _quantization(m),
            _options(m), _mb(a.size_bytes), _source(m)]


def _runtime(r: dict) -> str:
    return f"{r['runtime']} ({r['detail']})" if r.get("detail") else r["runtime"]


def _notes(rows: list[dict]) -> list[Para]:
    seen: dict[tuple[str, str], None] = {}
    for r in rows:
        for note in r.get("notes") or []:
            seen.setdefault((r["artifact"], str(note)), None)
    return [Para(f"{art}: {note}", kind="note") for art, note in seen]


def _results_section(run: Run, kind: str, title: str) -> tuple[Section, list]:
    """The section of one kind of saved result, and its files; without any, it says how to
    save one."""
    sec, files = Section(kind, title), run.results[kind]
    if not files:
        sec.present = False
        sec.blocks.append(missing(kind, run))
    return sec, files


def parity_section(run: Run) -> Section:
    sec, files = _results_section(run, "parity", "Parity with the Paddle fp32 reference")
    for f in files:
        d = f.data
        inputs = d["inputs"]
        what = "images" if inputs.get("kind") == "images" else "random inputs"
        failed = sum(not r["passed"] for r in d["results"])
        verdict = "all artifacts agree with the reference" if d["passed"] else \
            f"{failed} of {len(d['results'])} failed"
        rows = [[r["artifact"], _runtime(r), r["artifact_precision"], r["compute_precision"],
                 r["precision"], num(r["max_abs"], ".2e"), num(r["mean_abs"], ".2e"),
                 num(r["cosine_min"], ".7f"), num(r["top1_agreement"], ".1%"),
                 num(r["top5_overlap"], ".1%"), num(r["batch_max_diff"], ".1e"),
                 "pass" if r["passed"] else "FAIL: " + "; ".join(map(str, r["failures"]))]
                for r in d["results"]]
        sec.blocks.append(Table(
            ["artifact", "runtime", "stored", "computed", "judged as", "max abs", "mean abs",
             "cosine min", "top-1 agreement", "top-5 overlap", "batch diff", "result"], rows,
            numeric=set(range(5, 11)), verdict=11,
            caption=f"{f.name}: vs {d['reference'].get('dir', '?')} (paddle fp32) on "
                    f"{inputs.get('count', '?')} {what}, batch sizes "
                    f"{','.join(map(str, d['batch_sizes']))}: {verdict}"))
        sec.blocks += _notes(d["results"])
    return sec


def eval_section(run: Run) -> Section:
    sec, files = _results_section(run, "eval", "Accuracy")
    for f in files:
        rows = f.data["results"]
        on = f" on {f.data['data']}" if f.data.get("data") else ""
        table = [[r["artifact"], r["runtime"], r["artifact_precision"], r["compute_precision"],
                  num(r["top1"], ".2%"), num(r["top5"], ".2%"),
                  "reference" if i == 0 else num(r["delta_top1"], "+.2f") + " pts", str(r["n"])]
                 for i, r in enumerate(rows)]
        sec.blocks.append(Table(
            ["artifact", "runtime", "stored", "computed", "top-1", "top-5", "Δ top-1 vs first",
             "images"], table, numeric={4, 5, 6, 7},
            caption=f"{f.name}: top-1 / top-5{on} ({rows[0]['n']} images); delta vs "
                    f"{rows[0]['artifact']}"))
    return sec


def _bench_precision(r: dict) -> str:
    a, c = r["artifact_precision"], r["compute_precision"]
    return a if a == c else f"{a} / {c}"


def machine_facts(d: dict[str, Any]) -> Facts:
    m, s = d["machine"], d["settings"]
    libs = m.get("libraries") if isinstance(m.get("libraries"), dict) else {}
    runs = f"{s.get('repeat')} measured runs" if s.get("repeat") else \
        f"~{s.get('seconds')} s measured"
    return Facts([
        ("CPU", f"{m.get('cpu', '?')}, {m.get('physical_cores', '?')} physical cores, "
                f"{m.get('logical_cpus', '?')} logical"),
        ("ISA", " ".join(map(str, m.get("isa") or [])) or "(none of the tracked extensions)"),
        ("threads", f"{d['threads']} for every runtime (and OMP/MKL/OPENBLAS_NUM_THREADS)"),
        ("fp32 GEMM", f"{num(d['gemm_gflops'], '.1f')} GFLOP/s (numpy, same threads); GFLOP/s "
                      "counts 2 per multiply-accumulate"),
        ("runs", f"{s.get('warmup', '?')} warmup + {runs} per artifact and batch size, each "
                 "artifact in its own process, interleaved"),
        ("software", ", ".join(f"{k} {v}" for k, v in libs.items() if v)
         + (f"; Python {m['python']}" if m.get("python") else "")),
    ])


def bench_section(run: Run) -> Section:
    sec, files = _results_section(run, "bench", "Speed")
    for f in files:
        d = f.data
        sizes = d["settings"]["batch_sizes"]
        top = max(sizes)
        cells: dict[tuple[str, str], dict[int, dict]] = {}
        for r in d["results"]:
            cells.setdefault((r["artifact"], r["runtime"]), {})[r["batch_size"]] = r
        rows = []
        for per_bs in cells.values():
            first = next(iter(per_bs.values()))
            last = per_bs.get(top, {})
            of_gemm = last.get("of_gemm")
            rows.append([first["artifact"], str(first.get("model") or "-"), _runtime(first),
                         _bench_precision(first),
                         *(num(per_bs[b]["p50_ms"], ".2f") if b in per_bs else "-" for b in sizes),
                         num(last.get("throughput"), ".1f"),
                         num(None if of_gemm is None else 100 * of_gemm, ".1f")])
        n = len(sizes)
        sec.blocks.append(Table(
            ["artifact", "model", "runtime", "precision", *(f"bs={b}" for b in sizes),
             f"img/s (bs={top})", f"% of GEMM (bs={top})"], rows,
            numeric=set(range(4, 6 + n)),
            caption=f"{f.name}: latency p50 (ms), {d['threads']} threads on "
                    f"{d['machine'].get('cpu', '?')}"))
        sec.blocks.append(machine_facts(d))
        if any(r["runtime"] == "lite" or "twin" in str(r.get("detail")) for r in d["results"]):
            sec.blocks.append(Para("Lite rows run the x86 twin of the ARM .nb on this machine: "
                                   "x86 latency, not phone latency.", kind="note"))
        sec.blocks.append(Table(
            ["artifact", "runtime", "bs", "p50 ms", "p90 ms", "p99 ms", "img/s", "load s",
             "peak RSS MB", "GFLOP/s", "% of GEMM", "runs"],
            [[r["artifact"], r["runtime"], str(r["batch_size"]), num(r["p50_ms"], ".2f"),
              num(r["p90_ms"], ".2f"), num(r["p99_ms"], ".2f"), num(r["throughput"], ".1f"),
              num(r["load_s"], ".2f"), num(r["peak_rss_mb"], ".0f"), num(r["gflops"], ".1f"),
              num(None if r["of_gemm"] is None else 100 * r["of_gemm"], ".1f"),
              str(r.get("samples", "-"))] for r in d["results"]],
            numeric=set(range(2, 12)), caption=f"{f.name}: detail per batch size"))
        sec.blocks += _notes(d["results"])
    return sec


def overview(run: Run) -> Facts:
    items = [("artifacts", str(len(run.artifacts)) if run.artifacts else "none")]
    par = [r for f in run.results["parity"] for r in f.data["results"]]
    items.append(("parity", f"{sum(r['passed'] for r in par)} of {len(par)} pass" if par
                  else "not run"))
    ev = [r for f in run.results["eval"] for r in f.data["results"]]
    if ev:
        tops = [r["top1"] for r in ev if r["top1"] is not None]
        items.append(("top-1", f"{min(tops):.2%} to {max(tops):.2%}" if tops else "-"))
    else:
        items.append(("top-1", "not run"))
    rows = [r for f in run.results["bench"] for r in f.data["results"] if r["p50_ms"] is not None]
    if rows:
        low = min(r["batch_size"] for r in rows)
        best = min((r for r in rows if r["batch_size"] == low), key=lambda r: r["p50_ms"])
        items.append((f"fastest at bs={low}", f"{best['p50_ms']:.2f} ms p50, {best['artifact']} "
                                              f"({best['runtime']})"))
    else:
        items.append(("speed", "not run"))
    return Facts(items)
