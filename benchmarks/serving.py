"""`vitdeploy serve` on DeiT-tiny: dynamic batching's throughput gain at 8 concurrent clients, the
server's overhead over the model at batch 1, failed requests and memory over a soak: the numbers
of docs/serving.md.

    python benchmarks/serving.py [--artifacts onnx,export] [--clients 8] [--requests 40]
                                 [--delays 2] [--rounds 2] [--soak 1600] [--ray] [--json out.json]

Artifacts: .cache/bench-int8/DeiT_tiny_patch16_224/{onnx,export} (benchmarks/int8_speed.py's,
seeded random weights: speed, not accuracy); built when missing. Each configuration runs in a
fresh server process on 127.0.0.1 (port 0), the configurations interleaved round by round; the
clients are tritonclient.http.aio coroutines in this process sending FP32 [1, 3, 224, 224]
tensors (binary extension), a fixed number of requests each, and every answer is checked against
the single-request answer for its input. The model's own latency is timed in a child process
(Runtime.time_runs, back to back, the same threads), after the servers have stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "DeiT_tiny_patch16_224"
VITDEPLOY = [sys.executable, "-m", "vitdeploy.cli"]
INPUTS = 16  # distinct inputs, cycled over by the clients


def build(work: Path) -> dict[str, Path]:
    arts = {"onnx": work / "onnx", "export": work / "export"}
    if all((d / "manifest.json").is_file() for d in arts.values()):
        return arts
    from vitdeploy.models.loader import save_random_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    ckpt = save_random_checkpoint(MODEL, work / "w.pdparams", seed=0)
    run = [*VITDEPLOY]
    subprocess.run([*run, "export", MODEL, "--weights", ckpt, "--out", arts["export"], "--force"],
                   check=True, cwd=ROOT)
    subprocess.run([*run, "convert", arts["export"], "--to", "onnx", "--out", arts["onnx"],
                    "--force"], check=True, cwd=ROOT)
    return arts


class Server:
    """``vitdeploy serve SPEC ARGS`` on 127.0.0.1, any free port; its JSON log in a temp file."""

    def __init__(self, spec: str, *args: object) -> None:
        self.log = Path(tempfile.mkstemp(prefix="vitdeploy-serve-", suffix=".log")[1])
        cmd = [*VITDEPLOY, "serve", spec, "--port", "0", *map(str, args)]
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in self.proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        while True:
            line = lines.get(timeout=600)
            if line is None:
                raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
            if m := re.match(r"^serving .* at http://([^\s]+) ", line):
                self.address = m.group(1)
                return

    def rss_mb(self) -> float:
        """The server process's resident memory (with Ray: the driver's, not the replicas')."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> dict:
        self.proc.terminate()
        self.proc.wait(120)
        records = [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.startswith("{")]
        errors = [r for r in records if r.get("status", 0) >= 500 or r.get("level") == "error"]
        self.log.unlink()
        return {"exit_code": self.proc.returncode, "server_errors": len(errors)}


class KServeServer(Server):
    """The same ONNX on KServe's ModelServer (benchmarks/kserve_model.py, in its own venv)."""

    def __init__(self, python: str, onnx: Path) -> None:
        import socket

        import httpx

        with socket.socket() as s:  # a free port (KServe takes no port 0)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log = Path(tempfile.mkstemp(prefix="kserve-", suffix=".log")[1])
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([python, str(ROOT / "benchmarks" / "kserve_model.py"),
                                          str(onnx), str(port)], cwd=ROOT, stdout=err, stderr=err)
        self.address = f"127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"http://{self.address}/v2/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"KServe did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> dict:
        self.proc.terminate()
        self.proc.wait(120)
        self.log.unlink()
        return {"exit_code": self.proc.returncode, "server_errors": 0}


async def drive(address: str, inputs: np.ndarray, clients: int, per_client: int,
                on_progress=None) -> dict:
    """``clients`` concurrent clients, ``per_client`` requests each (closed loop)."""
    import tritonclient.http as http
    from tritonclient.http.aio import InferenceServerClient

    answers: list[tuple[int, np.ndarray]] = []
    latencies: list[float] = []
    failures: list[str] = []

    async def client(k: int) -> None:
        async with InferenceServerClient(address, conn_timeout=300) as c:
            for j in range(per_client):
                i = (k * 5 + j) % len(inputs)
                inp = http.InferInput("x", [1, *inputs.shape[1:]], "FP32")
                inp.set_data_from_numpy(inputs[i:i + 1])
                t0 = time.perf_counter()
                try:
                    res = await c.infer("export", [inp], outputs=[http.InferRequestedOutput("logits")])
                except Exception as e:  # counted, never hidden
                    failures.append(str(e)[:200])
                    continue
                latencies.append(time.perf_counter() - t0)
                answers.append((i, res.as_numpy("logits")[0]))
                if on_progress is not None:
                    on_progress()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    return {"answers": answers, "failures": failures, "wall_s": wall,
            "mean_s": statistics.fmean(latencies) if latencies else float("nan"),
            "throughput": len(answers) / wall, "p50_ms": 1e3 * statistics.median(latencies),
            "p99_ms": 1e3 * float(np.percentile(latencies, 99))}


def metrics(address: str) -> dict[str, float]:
    import httpx

    text = httpx.get(f"http://{address}/metrics", timeout=30).text
    out: dict[str, float] = {}
    for name in ("vitdeploy_batch_size_sum", "vitdeploy_batch_size_count",
                 "vitdeploy_queue_duration_seconds_sum", "vitdeploy_queue_duration_seconds_count",
                 "vitdeploy_inference_duration_seconds_sum",
                 "vitdeploy_inference_duration_seconds_count"):
        out[name] = sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))
    return out


def run_config(server: Server, name: str, args: list, inputs: np.ndarray, reference, clients: int,
               per_client: int, latency_requests: int, soak: int) -> dict:
    """One server: warmup, 1-client latency (batch 1), the C-client throughput run, a soak."""
    try:
        asyncio.run(drive(server.address, inputs, clients, 4))  # warmup: sessions, connections
        kserve = isinstance(server, KServeServer)
        m0 = {} if kserve else metrics(server.address)
        single = asyncio.run(drive(server.address, inputs, 1, latency_requests))
        before = {} if kserve else metrics(server.address)
        # the model's own time for these very requests, timed in the server (same process, same
        # moment: robust to a drifting machine load), against the client's end-to-end mean
        n = before.get("vitdeploy_inference_duration_seconds_count", 0) - m0.get(
            "vitdeploy_inference_duration_seconds_count", 0)
        model_mean = (before.get("vitdeploy_inference_duration_seconds_sum", 0) - m0.get(
            "vitdeploy_inference_duration_seconds_sum", 0)) / n if n else float("nan")
        overhead_mean_ms = 1e3 * (single["mean_s"] - model_mean)
        rss_start = server.rss_mb()
        load = asyncio.run(drive(server.address, inputs, clients, per_client))
        rss_end = server.rss_mb()
        after = {} if kserve else metrics(server.address)
        soak_rss: list[float] = []
        if soak:
            done = [0]

            def tick() -> None:
                done[0] += 1
                if done[0] % max(1, soak // 8) == 0:
                    soak_rss.append(server.rss_mb())

            soak_rss.append(server.rss_mb())
            soaked = asyncio.run(drive(server.address, inputs, clients, soak // clients, tick))
            soak_rss.append(server.rss_mb())
            load["failures"] += soaked["failures"]
    finally:
        stopped = server.stop()
    ref = reference if reference is not None else {i: a for i, a in single["answers"]}
    diffs = [float(np.abs(a - ref[i]).max()) for i, a in load["answers"] + single["answers"]]
    top1 = all(int(a.argmax()) == int(ref[i].argmax()) for i, a in load["answers"])
    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    batches, rows = grew("vitdeploy_batch_size_count"), grew("vitdeploy_batch_size_sum")
    queue_s = grew("vitdeploy_queue_duration_seconds_sum")
    return {"config": name, "args": args, "throughput": load["throughput"], "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"], "single_p50_ms": single["p50_ms"],
            "single_overhead_mean_ms": overhead_mean_ms,
            "requests": len(load["answers"]) + len(load["failures"]), "failures": len(load["failures"]),
            "failure_examples": load["failures"][:3], "max_abs_vs_single": max(diffs),
            "top1_same": top1, "mean_batch": rows / batches if batches else float("nan"),
            "mean_queue_ms": 1e3 * queue_s / rows if rows else float("nan"),
            "rss_mb_start": rss_start, "rss_mb_end": rss_end, "soak_rss_mb": soak_rss,
            **stopped, "_reference": ref}


def model_latency(artifact: Path, repeat: int) -> dict:
    """In a child process: the model alone, back to back, batch 1 and 8 (p50 ms)."""
    code = f"""
import json, numpy as np
from vitdeploy import Predictor
with Predictor({str(artifact)!r}, verify=False) as p:
    out = {{}}
    for b in (1, 8):
        x = np.random.default_rng(b).standard_normal((b, 3, p.input_size, p.input_size)).astype(np.float32)
        p.runtime.warmup(x, runs=5)
        t = sorted(p.runtime.time_runs(x, {repeat}))
        out[b] = 1e3 * t[len(t) // 2]
    out["threads"] = p.runtime.threads
    out["runtime"] = p.runtime.name
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT, env={**os.environ, "GLOG_minloglevel": "2"})
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench-int8" / MODEL)
    ap.add_argument("--artifacts", default="onnx,export")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=40, help="per client, per throughput run")
    ap.add_argument("--latency-requests", type=int, default=200, help=f"at least {INPUTS}")
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--delays", default="2", help="comma-separated --max-queue-delay-ms values")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--soak", type=int, default=1600, help="requests of the soak (memory), batching")
    ap.add_argument("--ray", action="store_true", help="also --replicas 2 on Ray Serve")
    ap.add_argument("--kserve-python", help="a Python with kserve + onnxruntime: also serve the ONNX "
                    "with KServe's ModelServer (benchmarks/kserve_model.py), for comparison")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.latency_requests = max(args.latency_requests, INPUTS)  # they give the reference answers

    from vitdeploy.bench import machine_info
    from vitdeploy.runtimes import physical_cores

    arts = build(args.work)
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((INPUTS, 3, 224, 224)).astype(np.float32)
    report: dict = {"model": MODEL, "machine": machine_info(physical_cores()),
                    "clients": args.clients, "requests_per_client": args.requests,
                    "command": " ".join(["python", "benchmarks/serving.py", *sys.argv[1:]]),
                    "artifacts": {}}
    for kind in args.artifacts.split(","):
        artifact = arts[kind]
        served = f"export={artifact}"  # the clients ask for "export", whichever artifact
        configs: list[tuple[str, list[str]]] = [("no batching", ["--max-batch-size", "1"])]
        configs += [(f"batching {args.max_batch_size}, {d} ms",
                     ["--max-batch-size", str(args.max_batch_size), "--max-queue-delay-ms", d])
                    for d in args.delays.split(",")]
        kserve = "KServe ModelServer (no batching)"
        if args.kserve_python and kind == "onnx":
            configs.append((kserve, []))
        runs: dict[str, list[dict]] = {n: [] for n, _ in configs}
        reference = None
        for r in range(args.rounds):  # interleaved, alternating order: drifting load favours none
            for name, cfg in configs if r % 2 == 0 else configs[::-1]:
                soak = args.soak if (r == 0 and name == configs[1][0]) else 0  # once, batching
                # default log level: the per-request JSON log line is part of what is measured
                server = (KServeServer(args.kserve_python, artifact / "model.onnx") if name == kserve
                          else Server(served, *cfg))
                res = run_config(server, name, cfg, inputs, reference, args.clients,
                                 args.requests, args.latency_requests, soak)
                reference = res.pop("_reference")
                runs[name].append(res)
                print(f"[{kind}] {name}: {res['throughput']:.1f} req/s, p50 {res['p50_ms']:.1f} ms, "
                      f"1-client p50 {res['single_p50_ms']:.2f} ms (overhead "
                      f"{res['single_overhead_mean_ms']:.2f}), mean batch {res['mean_batch']:.2f}, "
                      f"failures {res['failures']}, max |diff| {res['max_abs_vs_single']:.1e}",
                      flush=True)
        if args.ray:
            name = f"Ray Serve, 2 replicas, batching {args.max_batch_size}"
            cfg = ["--replicas", "2", "--max-batch-size", str(args.max_batch_size),
                   "--max-queue-delay-ms", args.delays.split(",")[0]]
            res = run_config(Server(served, *cfg), name, cfg, inputs, reference, args.clients,
                             args.requests, args.latency_requests, 0)
            res.pop("_reference")
            runs[name] = [res]
            print(f"[{kind}] {name}: {res['throughput']:.1f} req/s, failures {res['failures']}",
                  flush=True)
        model = model_latency(artifact, args.latency_requests)
        summary = {}
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("throughput", "p50_ms", "p99_ms", "single_p50_ms", "mean_batch",
                             "mean_queue_ms", "single_overhead_mean_ms")}
            summary[name] = {**med, "runs": rs, "failures": sum(r["failures"] for r in rs),
                             "max_abs_vs_single": max(r["max_abs_vs_single"] for r in rs)}
        base = summary["no batching"]
        report["artifacts"][kind] = {"model_p50_ms": model, "configs": summary,
                                     "overhead_ms": base["single_p50_ms"] - model["1"]}
        print(f"\n### {kind} ({model['runtime']}, {model['threads']} threads): model p50 bs1 "
              f"{model['1']:.2f} ms, bs8 {model['8']:.2f} ms ({8e3 / model['8']:.0f} vs "
              f"{1e3 / model['1']:.0f} img/s)")
        print("| configuration | throughput (req/s) | vs no batching | p50 / p99 at "
              f"{args.clients} clients (ms) | mean batch | 1-client p50 (ms) | 1-client overhead "
              "(ms) | failed | max abs diff |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, s in summary.items():
            print(f"| {name} | {s['throughput']:.1f} | {s['throughput'] / base['throughput']:.2f}x | "
                  f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {s['mean_batch']:.2f} | "
                  f"{s['single_p50_ms']:.2f} | {s['single_overhead_mean_ms']:.2f} | "
                  f"{s['failures']} | {s['max_abs_vs_single']:.1e} |")
        report["artifacts"][kind]["overhead_mean_ms"] = base["single_overhead_mean_ms"]
        print(f"server overhead at batch 1, no batching: 1-client p50 - model p50 (child process) "
              f"{report['artifacts'][kind]['overhead_ms']:.2f} ms; mean end-to-end - mean model time "
              f"in the server, same requests: {base['single_overhead_mean_ms']:.2f} ms")
        soaks = [r for s in summary.values() for r in s["runs"] if r["soak_rss_mb"]]
        for r in soaks:
            print(f"memory over the soak ({args.soak} requests, {r['config']}): RSS MB "
                  f"{' -> '.join(f'{v:.0f}' for v in r['soak_rss_mb'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
        print(f"written {args.json}")


if __name__ == "__main__":
    main()
