"""Bulk inference (`predict --out`): in-process vs `--ray auto` with 1 and 2 actors on 100,000
generated images, memory over the run, and a two-node Ray cluster simulated on this machine.
docs/bulk.md's numbers come from here.

    python benchmarks/bulk_inference.py [--images 100000] [--artifact DIR] [--batch-size 32]
                                        [--rounds 2] [--skip-two-node]

The images: the digits sample's 32x32 PNGs, each written as many times as needed with a
deterministic one-pixel shift and noise (so every file is distinct), into .cache/bulk/<N>/
once (reused). The artifact defaults to demo-out/onnx (`make demo`). Each run is its own
process (runtimes sharing a process slow each other), the configurations interleaved round by
round, medians reported; the resident memory of the run's whole process tree (driver, local
Ray, actors) is sampled every second. Prints one Markdown table and
writes .cache/bulk/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "bulk"
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_images(n: int) -> Path:
    """N distinct 32x32 PNGs from the digits sample, 1,000 per folder; written once."""
    import numpy as np
    from PIL import Image

    out = CACHE / str(n)
    if (out / "DONE").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    src = sorted((ROOT / "samples" / "digits" / "test").rglob("*.png"))
    bases = [np.asarray(Image.open(p).convert("RGB")) for p in src]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.roll(bases[i % len(bases)], shift=(i // len(bases)) % 3 - 1, axis=1)
        noisy = np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255)
        folder = out / f"{i // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy.astype(np.uint8)).save(folder / f"{i:07d}.png")
    (out / "DONE").write_text(str(n))
    return out


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant (a local Ray's helper, raylet, actors)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                parent[int(entry.name)] = int(fields[1])
                rss[int(entry.name)] = int(fields[21]) * PAGE
            except (OSError, ValueError, IndexError):
                continue
    keep, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in keep]
        keep.update(kids)
        frontier += kids
    return sum(rss.get(p, 0) for p in keep)


def run(args: list[str], env: dict | None = None) -> tuple[dict, list[tuple[float, int]]]:
    """One `vitdeploy predict --out` in its own process: its --json and (time, tree RSS)."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "vitdeploy.cli", *args, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **(env or {})})
    samples = []
    while p.poll() is None:
        samples.append((time.monotonic() - t0, _tree_rss(p.pid)))
        time.sleep(1.0)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {err.strip()[-2000:]}")
    return json.loads(out), samples


def flatness(samples: list[tuple[float, int]]) -> dict:
    """Peak RSS, and RSS at 25 % and 90 % of the run: flat memory means they stay close."""
    rss = [r for _, r in samples if r]
    if not rss:
        return {"peak_mib": 0, "at_25_mib": 0, "at_90_mib": 0}
    mib = 1 << 20
    return {"peak_mib": round(max(rss) / mib), "at_25_mib": round(rss[len(rss) // 4] / mib),
            "at_90_mib": round(rss[int(len(rss) * 0.9)] / mib)}


def rows(path: Path) -> list[tuple]:
    import pyarrow.parquet as pq

    return [(r["image"], tuple(r["topk_ids"]), tuple(round(s, 5) for s in r["topk_scores"]))
            for r in pq.read_table(path).to_pylist()]


def two_node(artifact: Path, data: Path, want: Path, work: Path, bs: list[str]) -> dict:
    """A head and a second node (`ray start --address`) on this machine, 3 CPUs each; two
    actors of 2 threads cannot share a node, so each node runs one. Rows must equal ``want``."""
    import secrets

    port = 6390 + os.getpid() % 200
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    ray = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus", "3", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", "--port", str(port), "--include-dashboard",
                        "false", *common], env=env, check=True, capture_output=True)
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", *common], env=env,
                       check=True, capture_output=True)
        out = work / "two_node.parquet"
        result, samples = run(["predict", str(artifact), str(data), "--out", str(out), "--ray",
                               f"127.0.0.1:{port}", "--workers", "2", "--threads", "2", *bs],
                              env)
        same = rows(out) == rows(want) and len(rows(want)) == result["images"] > 0
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
    return {**result, "identical_to_in_process": same, **flatness(samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--artifact", type=Path, default=ROOT / "demo-out" / "onnx")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-two-node", action="store_true")
    a = ap.parse_args()
    from vitdeploy.resources import cpu_name, usable_cpus

    started = time.monotonic()
    data = make_images(a.images)
    print(f"images ready in {time.monotonic() - started:.0f} s: {data}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="vitdeploy-bulk-bench-"))
    configs = [("in-process (2 decode threads)", []),
               ("--ray auto, 1 actor", ["--ray", "auto", "--workers", "1"]),
               ("--ray auto, 2 actors", ["--ray", "auto", "--workers", "2"])]
    bs = ["--batch-size", str(a.batch_size)]
    runs: dict[int, list[dict]] = {i: [] for i in range(len(configs))}
    for _ in range(a.rounds):
        for i, (name, extra) in enumerate(configs):
            out = work / f"{i}.parquet"
            res, samples = run(["predict", str(a.artifact), str(data), "--out", str(out),
                                "--force", *bs, *extra])
            runs[i].append({"config": name, **res, **flatness(samples),
                            "rows": rows(out) if i == 0 or not runs[i] else None})
            print(f"{name}: {res['rate']:.0f} images/s", file=sys.stderr)
    results = []
    for i in runs:  # the median run by steady rate
        ordered = sorted(runs[i], key=lambda r: r["steady_rate"])
        results.append({**ordered[len(ordered) // 2],
                        "steady_rates": [round(r["steady_rate"]) for r in runs[i]]})
    base = runs[0][0]["rows"]
    for i, r in enumerate(results[1:], 1):
        r["identical_to_in_process"] = runs[i][0]["rows"] == base
    for r in results:
        r.pop("rows", None)
    if not a.skip_two_node:
        sub = work / "two_node_paths.txt"  # a text file of paths: the 10,000 first images
        sub.write_text("".join(f"{p}\n" for folder in sorted(data.iterdir())[:10]
                               if folder.is_dir() for p in sorted(folder.glob("*.png"))))
        want = work / "two_node_want.parquet"
        run(["predict", str(a.artifact), str(sub), "--out", str(want), *bs])
        results.append({"config": "two nodes (ray start --address), 2 actors x 2 threads",
                        **two_node(a.artifact, sub, want, work, bs)})
    machine = f"{cpu_name()}, {usable_cpus()} CPUs, {platform.machine()}"
    print(f"\n{machine}; {a.images:,} images of 32x32; artifact {a.artifact}; batch "
          f"{a.batch_size}; median of {a.rounds} interleaved rounds\n")
    print("| run | images | rate (img/s, start-up incl.) | start-up (s) | steady rate (img/s) "
          "| vs in-process (steady) | peak RSS (MiB) | RSS at 25 % / 90 % | same rows |")
    print("|---|---|---|---|---|---|---|---|---|")
    ref = results[0]["steady_rate"]
    for r in results:
        print(f"| {r['config']} | {r['images']:,} | {r['rate']:.0f} | {r['startup_s']:.1f} | "
              f"{r['steady_rate']:.0f} | {r['steady_rate'] / ref:.2f}x | {r['peak_mib']} | "
              f"{r['at_25_mib']} / {r['at_90_mib']} | "
              f"{r.get('identical_to_in_process', 'reference')} |")
    (CACHE / "results.json").write_text(json.dumps({"machine": machine, "runs": results},
                                                   indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
