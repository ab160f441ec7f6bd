"""The report's ``optimize`` section: every candidate of a saved ``vitdeploy optimize`` result as
a table, and accuracy against cost with the Pareto front, the budget and the winner marked."""

from __future__ import annotations

from typing import Any

from .collect import Run
from .document import Facts, Para, Plot, Section, Table, num
from .plots import MARKERS, STYLE, latency_axis, new_figure, plain, png_plot

HOW = "vitdeploy optimize EXPORT --eval-data DATA --calib DIR --out {dir}/opt"


def _cost(r: dict, objective: str) -> float | None:
    if objective == "latency":
        return r.get("p50_ms")
    return r.get("throughput")


def _verdict(r: dict) -> str:
    if r.get("winner"):
        return "WINNER"
    if r.get("status") != "ok":
        return str(r.get("status"))
    return "within budget" if r.get("within_budget") else "over budget"


def optimize_section(run: Run) -> Section:
    sec = Section("optimize", "Optimize: the fastest artifact within the accuracy budget")
    files = run.results["optimize"]
    if not files:
        sec.present = False
        sec.blocks.append(Para("Not run. Search every runtime and precision with",
                               HOW.format(dir=run.path.as_posix()), "missing"))
        return sec
    for i, f in enumerate(files, 1):
        d = f.data
        sec.blocks.append(_facts(d))
        rows = [[r["name"], r["runtime"], r["artifact_precision"] or r["precision"],
                 r["compute_precision"] or "-",
                 num(None if r["top1"] is None else 100 * r["top1"], ".2f"),
                 num(r["delta_top1"], "+.2f"), "pass" if r["parity_passed"] else "FAIL",
                 num(r["p50_ms"], ".3f"), num(r["p90_ms"], ".3f"), num(r["throughput"], ".1f"),
                 num(r["speedup"], ".2f"), "yes" if r["pareto"] else "", _verdict(r)]
                for r in d["results"]]
        sec.blocks.append(Table(
            ["candidate", "runtime", "stored", "computed", "top-1 %", "Δ top-1", "parity",
             "p50 ms", "p90 ms", "img/s", "speed-up", "Pareto", "verdict"], rows,
            numeric={4, 5, 7, 8, 9, 10}, verdict=6,
            caption=f"{f.name}: {d['objective']} at batch size {d['batch_size']}, "
                    f"{d['threads']} threads on {d['machine'].get('cpu', '?')}"))
        skipped = {k: v for k, v in d["skipped"].items() if not str(v).startswith("not among")}
        if skipped:
            sec.blocks.append(Facts([(k, str(v)) for k, v in skipped.items()]))
        for note in d.get("notes") or []:
            sec.blocks.append(Para(str(note), kind="note"))
        sec.blocks.append(_pareto(d, f.name, "pareto" if len(files) == 1 else f"pareto-{i}"))
    return sec


def _facts(d: dict) -> Facts:
    ev = d["eval_data"]
    items = [("budget", f"at most {d['max_drop']:g} top-1 points below Paddle fp32 "
                        f"({num(100 * d['baseline_top1'], '.2f')} % on {ev.get('images')} images "
                        f"of {ev.get('path')}), and parity"),
             ("winner", str(d.get("winner") or "none meets the budget"))]
    if d.get("best"):
        items.append(("best", str(d["best"])))
    if d.get("command"):
        items.append(("run it", str(d["command"])))
    items.append(("search", f"{num(d.get('seconds'), '.0f')} s"))
    return Facts(items)


def _pareto(d: dict, name: str, key: str) -> Plot | Para:
    objective = d["objective"]
    pts = [r for r in d["results"] if r["top1"] is not None and _cost(r, objective)]
    if not pts:
        return Para(f"Accuracy against {objective}: {name} holds no timed candidate.",
                    kind="missing")
    import matplotlib
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        return _draw(d, pts, objective, name, key)


def _draw(d: dict, pts: list[dict], objective: str, name: str, key: str) -> Plot:
    from matplotlib import colormaps

    fig, ax = new_figure()
    cmap = colormaps["tab10" if len(pts) <= 10 else "tab20"]
    for i, r in enumerate(pts):
        x, y = _cost(r, objective), 100 * r["top1"]
        edge: dict[str, Any] = {"edgecolors": "black", "linewidths": 1.6} if r["winner"] else \
            {"edgecolors": "white", "linewidths": 0.6}
        label = plain(f"{r['name']}{' (winner)' if r['winner'] else ''}")
        ax.scatter([x], [y], s=90 if r["winner"] else 46, color=cmap(i % cmap.N),
                   marker=MARKERS.get(r["precision"], "o"), label=label, zorder=3, **edge)
    front = sorted((r for r in pts if r["pareto"]), key=lambda r: _cost(r, objective))
    if len(front) > 1:
        ax.plot([_cost(r, objective) for r in front], [100 * r["top1"] for r in front],
                color="#6b7280", linewidth=1.0, linestyle="--", zorder=2, label="Pareto front")
    floor = 100 * d["baseline_top1"] - d["max_drop"]
    ax.axhline(floor, color="#dc2626", linewidth=0.9, linestyle=":",
               label=f"budget (-{d['max_drop']:g} points)")
    ys = [100 * r["top1"] for r in pts] + [floor]
    pad = max(0.5, (max(ys) - min(ys)) * 0.15)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    xs = [_cost(r, objective) for r in pts]
    latency_axis(ax, xs)
    unit = "latency p50 (ms)" if objective == "latency" else "throughput (images/s)"
    ax.set_xlabel(f"{unit} at batch size {d['batch_size']}")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(plain(f"Accuracy against {objective} ({name})"), loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    better = "left" if objective == "latency" else "right"
    return png_plot(key, f"Top-1 (%) against {unit}: the Pareto front of every candidate "
                      f"(better is up and {better}), from {name}", fig)
