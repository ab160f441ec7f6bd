"""The Lite worker: runs inside the Lite environment (Python 3.10, Paddle 2.6, paddlelite).

``python lite_worker.py COMMAND JSON`` prints one JSON line (the last line starting with '{').
``serve`` instead reads JSON requests line by line from stdin and answers each on stdout.
Only the model code, the safe checkpoint loader, Paddle 2.6, paddlelite and numpy are imported.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import json
import os
import sys
import tempfile
import traceback


def _reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _capture_fd1():
    """Capture what native code prints on stdout (opt's reports) into a string list."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        box: list[str] = []
        try:
            yield box
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            box.append(sink.read().decode("utf-8", "replace"))


def _program_ops(path: str) -> dict:
    from paddle.base.proto import framework_pb2

    prog = framework_pb2.ProgramDesc()
    with open(path, "rb") as f:
        prog.ParseFromString(f.read())
    return dict(collections.Counter(op.type for op in prog.blocks[0].ops))


def export(args: dict) -> dict:
    """Checkpoint -> legacy inference.pdmodel/.pdiparams with the compatibility passes applied."""
    import paddle
    from paddle.base.proto import framework_pb2

    from vitdeploy.lite.passes import run_passes
    from vitdeploy.models.deploy import save_deployable
    from vitdeploy.models.loader import load_model

    paddle.set_device("cpu")
    loaded = load_model(args["model"], args["weights"], args.get("num_classes"))
    prefix = os.path.join(args["out"], "inference")
    # the same builder as 'vitdeploy export', so --softmax (and folding) survive into the .nb
    softmax = bool(args.get("softmax"))
    save_deployable(loaded.model, prefix, loaded.config.input_size, softmax=softmax)
    prog = framework_pb2.ProgramDesc()
    with open(prefix + ".pdmodel", "rb") as f:
        prog.ParseFromString(f.read())
    passes = run_passes(prog)
    with open(prefix + ".pdmodel", "wb") as f:
        f.write(prog.SerializeToString())
    return {"passes": passes, "ops": _program_ops(prefix + ".pdmodel"),
            "num_classes": loaded.num_classes, "softmax": softmax, "paddle": paddle.__version__}


def _parse_support(report: str) -> dict:
    """opt's 'OPs in the input model include' table -> {op: [places with a kernel]}."""
    lines = report.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if "OP_name" in ln)
    except StopIteration:
        return {}
    header = lines[start]
    cols = [(header.index(tok) + len(tok), tok) for tok in header.split()[1:]]
    table = {}
    for ln in lines[start + 1:]:
        parts = ln.split()
        if not parts or parts[0] in ("Paddle-Lite", "Supported") or ln.startswith("Paddle"):
            break
        places = []
        for pos, ch in enumerate(ln):
            if ch == "Y" and pos > len(ln) - len(ln.lstrip()) + len(parts[0]):
                places.append(min(cols, key=lambda c: abs(c[0] - 1 - pos))[1])
        table[parts[0]] = places
    return table


def preflight(args: dict) -> dict:
    from paddlelite.lite import Opt

    opt = Opt()
    opt.set_model_file(os.path.join(args["model_dir"], "inference.pdmodel"))
    opt.set_param_file(os.path.join(args["model_dir"], "inference.pdiparams"))
    opt.set_valid_places(args["valid_places"])
    with _capture_fd1() as box:
        opt.check_if_model_supported(False)
    support = _parse_support(box[0])
    missing = sorted(op for op, places in support.items() if not places)
    return {"support": support, "unsupported": missing, "report": box[0][-4000:]}


def optimize(args: dict) -> dict:
    from paddlelite.lite import Opt

    opt = Opt()
    opt.set_model_file(os.path.join(args["model_dir"], "inference.pdmodel"))
    opt.set_param_file(os.path.join(args["model_dir"], "inference.pdiparams"))
    opt.set_valid_places(args["valid_places"])
    opt.set_model_type("naive_buffer")
    if args.get("quantize"):
        opt.set_quant_model(True)
        opt.set_quant_type({"int8": "QUANT_INT8", "int16": "QUANT_INT16"}[args["quantize"]])
    if args.get("fp16"):
        opt.enable_fp16()
    if args.get("record_tailoring"):  # the ops and kernels it uses: <out_prefix>/.tailored_*
        opt.record_model_info(True)
    opt.set_optimize_out(args["out_prefix"])
    with _capture_fd1() as box:
        opt.run()
    nb = args["out_prefix"] + ".nb"
    if not os.path.isfile(nb):
        return {"error": f"opt wrote no {nb}: {box[0].strip().splitlines()[-1:]}"}
    return {"nb": nb, "opt_version": opt.version(), "log": box[0][-2000:]}


def fake_quant(args: dict) -> dict:
    """Round weights the way opt's weight-only quantization stores them (intN x per-channel
    scale), so an fp32 x86 build computes with exactly the weights the ARM model dequantizes."""
    import numpy as np
    import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prefix = os.path.join(args["model_dir"], "inference")
    program, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
    scope = paddle.static.global_scope()
    qmax = 2 ** (int(args["bits"]) - 1) - 1
    worst = 0.0
    for name, (slot, scales) in args["scales"].items():
        var = scope.find_var(name)
        if var is None:
            return {"error": f"weight {name} named by the .nb is not in the legacy program"}
        tensor = var.get_tensor()
        w = np.array(tensor)
        s = np.asarray(scales, dtype=np.float32)
        if s.size == 1:
            shape = [1] * w.ndim
        elif slot == "Filter":  # conv: one scale per output channel
            shape = [-1] + [1] * (w.ndim - 1)
        else:  # fc / matmul weights [in, out]: one scale per output column
            axis = max(i for i in range(w.ndim) if w.shape[i] == s.size)
            shape = [1] * w.ndim
            shape[axis] = -1
        s = s.reshape(shape)
        q = np.clip(np.round(w / np.where(s == 0, 1, s)), -qmax, qmax) * s
        worst = max(worst, float(np.abs(q - w).max() / (np.abs(w).max() + 1e-12)))
        tensor.set(q.astype(w.dtype), paddle.CPUPlace())
    block = program.global_block()
    data = paddle.static.serialize_persistables([block.var(n) for n in feeds], fetches, exe,
                                                program=program)
    os.makedirs(args["out_dir"], exist_ok=True)
    with open(os.path.join(args["out_dir"], "inference.pdiparams"), "wb") as f:
        f.write(data)
    with open(prefix + ".pdmodel", "rb") as src, \
            open(os.path.join(args["out_dir"], "inference.pdmodel"), "wb") as dst:
        dst.write(src.read())
    return {"weights": len(args["scales"]), "max_rel_change": worst}


@functools.lru_cache(maxsize=1)
def _x86_math_libs() -> tuple:
    """(libmklml, libiomp5) bundled with paddlelite, or Nones (an ARM build ships neither)."""
    import paddlelite

    libs = os.path.join(os.path.dirname(paddlelite.__file__), "libs")
    found = []
    for name in ("libmklml_intel.so", "libiomp5.so"):
        path = os.path.join(libs, name)
        found.append(ctypes.CDLL(path) if os.path.isfile(path) else None)  # the copy Lite loads
    return tuple(found)


def _apply_x86_threads(n: int) -> int | None:
    """Set Lite x86's math threads; returns the count MKL reports back (None: no MKL here).

    The x86 binding has no MobileConfig.set_threads (ARM-only) nor set_x86_math_num_threads,
    and creating any predictor resets MKL to 1 thread, process-wide: so it is set right before
    every run, in the bundled MKL (its GEMMs are where threads pay off) and OpenMP runtime.
    This overrides the OMP_NUM_THREADS=1 that worker_env() sets."""
    mkl, omp = _x86_math_libs()
    if omp is not None:
        omp.omp_set_num_threads(n)
    if mkl is None:
        return None
    mkl.MKL_Set_Num_Threads(n)
    return int(mkl.MKL_Get_Max_Threads())


class _Session:
    """One predictor per (nb, threads): a request with another thread count gets its own."""

    def __init__(self, nb: str, threads: int) -> None:
        from paddlelite.lite import MobileConfig, create_paddle_predictor

        config = MobileConfig()
        config.set_model_from_file(nb)
        self.configured: int | None = None
        if hasattr(config, "set_threads"):  # ARM builds of the binding only
            config.set_threads(threads)
            self.configured = config.threads()
        self.predictor = create_paddle_predictor(config)
        self.threads = threads

    def run(self, x) -> tuple:
        """(output, the thread count actually configured, as Lite/MKL report it)."""
        applied = _apply_x86_threads(self.threads)
        self.predictor.get_input(0).from_numpy(x)
        self.predictor.run()
        return self.predictor.get_output(0).numpy(), applied if applied is not None else self.configured


def serve(_args: dict) -> None:
    """Persistent mode for the Lite runtime: {"nb", "input", "output", "threads"} per line;
    answers {"ok": true, "threads": N, "seconds": S}, N being the thread count really in effect
    and S the time of the run itself (input copy, run, output copy; not the .npy hand-over).
    {"cmd": "load", "nb", "threads"} creates the predictor ahead of the first run."""
    import time

    import numpy as np

    sessions: dict[tuple[str, int], _Session] = {}
    _reply({"ready": True})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            key = (req["nb"], max(1, int(req.get("threads") or 1)))
            if key not in sessions:
                sessions[key] = _Session(*key)
            if req.get("cmd") == "load":
                _reply({"ok": True})
                continue
            x = np.load(req["input"])
            t0 = time.perf_counter()
            y, threads = sessions[key].run(x)
            seconds = time.perf_counter() - t0
            np.save(req["output"], np.ascontiguousarray(y, dtype=np.float32))
            _reply({"ok": True, "threads": threads, "seconds": seconds})
        except Exception as e:  # one bad request must not kill the session
            _reply({"error": f"{type(e).__name__}: {e}"})


def legacy(args: dict) -> dict:
    """A legacy inference.pdmodel/.pdiparams given as is (PaddleClas on Paddle 2.x): copied and
    passed through the compatibility passes, no checkpoint needed."""
    import shutil

    import paddle
    from paddle.base.proto import framework_pb2

    from vitdeploy.lite.passes import run_passes

    prog = framework_pb2.ProgramDesc()
    with open(args["src"], "rb") as f:
        prog.ParseFromString(f.read())
    passes = run_passes(prog)
    prefix = os.path.join(args["out"], "inference")
    with open(prefix + ".pdmodel", "wb") as f:
        f.write(prog.SerializeToString())
    shutil.copyfile(os.path.splitext(args["src"])[0] + ".pdiparams", prefix + ".pdiparams")
    return {"passes": passes, "ops": _program_ops(prefix + ".pdmodel"), "paddle": paddle.__version__}


COMMANDS = {"export": export, "legacy": legacy, "preflight": preflight, "optimize": optimize,
            "fake_quant": fake_quant, "serve": serve}


def main() -> int:
    # the payload: "-" reads it from stdin (run_worker), else the argument itself
    arg = sys.argv[2] if len(sys.argv) > 2 else "{}"
    command, payload = sys.argv[1], json.loads(sys.stdin.read() if arg == "-" else arg)
    try:
        result = COMMANDS[command](payload)
    except Exception as e:
        from vitdeploy.errors import VitdeployError

        if os.environ.get("VITDEPLOY_DEBUG"):
            traceback.print_exc()
        text = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        _reply({"error": text if isinstance(e, VitdeployError) else f"{type(e).__name__}: {text}"})
        return 1
    if result is not None:
        _reply(result)
    return 0 if not (result or {}).get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
