"""What Ray Serve's proxy hop costs: one `vitdeploy serve` process against `--replicas 2`, on the
same artifact, the same machine, the same clients (docs/serving.md, "Ray Serve").

    python benchmarks/proxy_hop.py ARTIFACT [--requests 400] [--clients 8] [--rounds 2] [--json F]

Each configuration runs in a fresh server (127.0.0.1, port 0), the two interleaved round by round.
Per round: a single client sends --requests FP32 tensors one after another (latency p50: the hop's
cost per request is the difference), then --clients threads send --requests each (throughput).
Every answer must be a 200; failures are counted. The machine's CPU is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "serve"))

CONFIGS = {"one process": (), "--replicas 2": ("--replicas", "2")}


def _body(size: int) -> dict:
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}], "outputs": [{"name": "logits"}]}


def _measure(url: str, body: dict, requests: int, clients: int) -> dict:
    failed = 0
    with httpx.Client(timeout=120) as http:
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            failed += http.post(url, json=body).status_code != 200
            times.append(time.perf_counter() - t0)

    def client(_: int) -> int:
        with httpx.Client(timeout=120) as c:
            return sum(c.post(url, json=body).status_code != 200 for _ in range(requests))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        failed += sum(pool.map(client, range(clients)))
    took = time.perf_counter() - t0
    return {"p50_ms": statistics.median(times) * 1e3, "req_s": clients * requests / took,
            "requests": requests * (clients + 1), "failed": failed}


def main() -> None:
    from serve_helpers import running_server

    from vitdeploy.artifact import read_artifact_info
    from vitdeploy.resources import cpu_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    info = read_artifact_info(args.artifact)
    body = _body(info.preprocess.crop_size)
    name = args.artifact.resolve().name
    results: dict[str, list[dict]] = {k: [] for k in CONFIGS}
    for _ in range(args.rounds):
        for label, extra in CONFIGS.items():
            log = Path(f"/tmp/proxy_hop_{label.replace(' ', '_')}.log")
            with running_server(args.artifact, "--max-batch-size", 8, *extra, log=log,
                                timeout=420) as server:
                url = f"{server.url}/v2/models/{name}/infer"
                for _ in range(20):  # warm both replicas
                    httpx.post(url, json=body, timeout=120)
                results[label].append(_measure(url, body, args.requests, args.clients))
    summary = {label: {"p50_ms": statistics.median(r["p50_ms"] for r in runs),
                       "req_s": statistics.median(r["req_s"] for r in runs),
                       "requests": sum(r["requests"] for r in runs),
                       "failed": sum(r["failed"] for r in runs)} for label, runs in results.items()}
    one, ray = summary["one process"], summary["--replicas 2"]
    report = {"cpu": cpu_name(), "artifact": str(args.artifact), "configs": summary,
              "hop_ms": ray["p50_ms"] - one["p50_ms"], "throughput_ratio": ray["req_s"] / one["req_s"]}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
