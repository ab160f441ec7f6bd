"""The report's two plots, as PNG bytes: latency against batch size, and accuracy against
latency. matplotlib is imported here only (its Agg renderer, no display, no pyplot); the PNGs
carry no software or time stamp, so the same results give the same bytes."""

from __future__ import annotations

import io
from typing import Any

from .collect import Run
from .document import Para, Plot, Section
from .sections import missing

MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^", "int16": "v"}


STYLE = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.color": "#e5e7eb", "grid.linewidth": 0.8}


def new_figure() -> tuple[Any, Any]:
    """A Figure of its own, not pyplot's: no global backend or state of the caller's changes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.9))
    return fig, fig.subplots()


DPI = 150  # drawn for high-density screens, shown at CSS size (96 px per inch)


def png_plot(key: str, title: str, fig: Any) -> Plot:
    buf = io.BytesIO()  # Agg, chosen by the format
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    png = buf.getvalue()
    width = int.from_bytes(png[16:20], "big")  # IHDR
    return Plot(key, title, png, round(width * 96 / DPI))


def plain(text: str) -> str:
    """User text shown as is: matplotlib reads $...$ as mathematics (and may fail on it) and
    hides legend entries that start with an underscore."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


Key = tuple[str, str]  # (artifact directory name, runtime)


def _key(r: dict) -> Key:
    """eval and bench name an artifact as each was given it (a relative or an absolute path):
    matched by directory name."""
    return r["artifact"].rstrip("/").rsplit("/", 1)[-1] or r["artifact"], r["runtime"]


def _styles(run: Run) -> tuple[dict[Key, Any], dict[Key, str]]:
    """One colour and label per (artifact, runtime), the same in both plots; the runtime is in
    the label only where one artifact ran on several."""
    from matplotlib import colormaps

    keys = list(dict.fromkeys(_key(r) for kind in ("bench", "eval") for f in run.results[kind]
                              for r in f.data["results"]))
    cmap = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    per_artifact: dict[str, int] = {}
    for a, _ in keys:
        per_artifact[a] = per_artifact.get(a, 0) + 1
    twins = {_key(r) for f in run.results["bench"] for r in f.data["results"]
             if "twin" in str(r.get("detail"))}  # Lite's x86 twin: not phone latency
    return ({k: cmap(i % cmap.N) for i, k in enumerate(keys)},
            {(a, rt): plain(a + (f" ({rt})" if per_artifact[a] > 1 else "")
                             + (" (x86 twin)" if (a, rt) in twins else "")) for a, rt in keys})


def plots_section(run: Run) -> Section:
    sec = Section("plots", "Plots")
    bench = run.results["bench"]
    if not bench:
        sec.present = False
        sec.blocks.append(Para("Latency against batch size: no bench results.", kind="missing"))
        sec.blocks.append(missing("bench", run))
        return sec
    import matplotlib
    import matplotlib.style

    # matplotlib's defaults, not the caller's matplotlibrc: the same results, the same PNGs
    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        colors, labels = _styles(run)
        for i, f in enumerate(bench, 1):
            sec.blocks.append(_latency(f.name, f.data, colors, labels,
                                       "latency" if len(bench) == 1 else f"latency-{i}"))
        acc = _accuracy(run, colors, labels) if run.results["eval"] else None
    if not run.results["eval"]:
        sec.blocks.append(Para("Accuracy against latency: no eval results.", kind="missing"))
        sec.blocks.append(missing("eval", run))
        return sec
    sec.blocks.append(acc if acc is not None else Para(
        "Accuracy against latency: no artifact (and runtime) has both an eval and a bench "
        "result.", kind="missing"))
    return sec


def latency_axis(ax: Any, xs: list[float]) -> bool:
    """A log x axis with plain tick labels when the values span over 8x (a slow reference would
    squeeze the rest together), else linear from 0. Returns whether it is logarithmic."""
    log = min(xs) > 0 and max(xs) / min(xs) > 8
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(left=0)
    return log


def _latency(name: str, data: dict, colors: dict, labels: dict, key: str) -> Plot | Para:
    sizes = data["settings"]["batch_sizes"]
    lines: dict[tuple[str, str], dict[int, float]] = {}
    for r in data["results"]:
        if r["p50_ms"] is not None:
            lines.setdefault(_key(r), {})[r["batch_size"]] = r["p50_ms"]
    if not lines:  # every latency non-finite (n/a): nothing to draw
        return Para(f"Latency against batch size: {name} holds no finite latency.", kind="missing")
    fig, ax = new_figure()
    for k, pts in lines.items():
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", markersize=4, linewidth=1.6,
                color=colors[k], label=labels[k])
    ax.set_xticks(sorted(sizes))
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency p50 (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(plain(f"Latency against batch size ({name}, {data['threads']} threads)"),
                 loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return png_plot(key, f"Latency p50 (ms) against batch size, from {name}", fig)


def _accuracy(run: Run, colors: dict, labels: dict) -> Plot | None:
    """top-1 (eval) against latency at the smallest batch size measured (bench), one point
    per artifact and runtime found in both; later files win over earlier ones."""
    top1 = {_key(r): r for f in run.results["eval"] for r in f.data["results"]
            if r["top1"] is not None}
    bench_rows = [r for f in run.results["bench"] for r in f.data["results"]
                  if r["p50_ms"] is not None]
    if not bench_rows:
        return None
    low = min(r["batch_size"] for r in bench_rows)
    latency = {_key(r): r for r in bench_rows if r["batch_size"] == low}
    both = [k for k in latency if k in top1]
    if not both:
        return None
    fig, ax = new_figure()
    ys = [100 * top1[k]["top1"] for k in both]
    for k, y in zip(both, ys):
        prec = plain(top1[k].get("precision") or latency[k]["precision"])
        x = latency[k]["p50_ms"]
        ax.scatter([x], [y], s=46, marker=MARKERS.get(prec, "o"), color=colors[k],
                   label=f"{labels[k]} ({prec})", zorder=3, edgecolors="white",
                   linewidths=0.6)
    lo, hi = min(ys), max(ys)
    pad = max(0.5, (hi - lo) * 0.15)
    ax.set_ylim(lo - pad, hi + pad)
    xs = [latency[k]["p50_ms"] for k in both]
    log = latency_axis(ax, xs)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_xlabel(f"latency p50 at batch size {low} (ms{', log scale' if log else ''})")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy against latency (eval top-1, bench p50)", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return png_plot("accuracy_latency", f"Top-1 (%) against latency at batch size {low}", fig)
