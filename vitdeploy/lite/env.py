"""The managed Paddle Lite toolchain: Python 3.10 + paddlepaddle 2.6.2 + paddlelite 2.13rc0.

paddlelite's last release has wheels only for Python <= 3.10, and Paddle 3 cannot write the
legacy ``.pdmodel`` that Lite's ``opt`` reads; Paddle 2.6 can. So Lite work runs in its own
virtual environment, driven through a worker subprocess (``worker.py``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VitdeployError

PADDLE = "paddlepaddle==2.6.2"
PADDLELITE = "paddlelite==2.13rc0"
REQUIREMENTS = (PADDLE, PADDLELITE, "numpy<2")


class LiteToolchainError(VitdeployError):
    """No Python 3.10, or the Lite environment is missing or broken."""


def env_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitdeploy" / "lite-env"
    return Path(os.environ.get("VITDEPLOY_LITE_ENV", default))


def env_python() -> Path:
    return env_dir() / "bin" / "python"


def _is_python310(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def find_python310() -> tuple[str, str]:
    """(interpreter, how it was found). Order: $VITDEPLOY_LITE_PYTHON, python3.10 on PATH,
    pyenv's versions, uv's managed Pythons."""
    explicit = os.environ.get("VITDEPLOY_LITE_PYTHON")
    if explicit:
        if _is_python310(explicit):
            return explicit, "VITDEPLOY_LITE_PYTHON"
        raise LiteToolchainError(f"VITDEPLOY_LITE_PYTHON={explicit} is not a working Python 3.10")
    on_path = shutil.which("python3.10")
    if on_path and _is_python310(on_path):
        return on_path, "PATH"
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for exe in sorted(glob.glob(f"{pyenv_root}/versions/3.10.*/bin/python3.10"), reverse=True):
        if _is_python310(exe):
            return exe, "pyenv"
    uv = shutil.which("uv")
    if uv:
        found = subprocess.run([uv, "python", "find", "3.10"], capture_output=True, text=True)
        exe = found.stdout.strip()
        if found.returncode == 0 and exe and _is_python310(exe):
            return exe, "uv"
    raise LiteToolchainError(
        "Paddle Lite needs Python 3.10 (paddlelite has no wheels for newer Pythons) and none was "
        "found; install it (e.g. 'pyenv install 3.10' or 'uv python install 3.10') or set "
        "VITDEPLOY_LITE_PYTHON=/path/to/python3.10"
    )


@dataclass
class LiteStatus:
    env: str
    ready: bool
    python: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    problem: str | None = None


def status() -> LiteStatus:
    py = env_python()
    if not py.exists():
        return LiteStatus(str(env_dir()), False, problem="not set up: run 'vitdeploy lite setup'")
    probe = ("import json, sys, numpy, paddle, paddlelite.lite as l; print(json.dumps({'python': "
             "sys.version.split()[0], 'paddlepaddle': paddle.__version__, 'numpy': numpy.__version__,"
             " 'paddlelite': l.Opt().version() if hasattr(l.Opt(), 'version') else '2.13rc0'}))")
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True,
                         env={**os.environ, "GLOG_minloglevel": "3"})
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return LiteStatus(str(env_dir()), False, str(py),
                          problem=f"broken ({last}); rerun 'vitdeploy lite setup --force'")
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    return LiteStatus(str(env_dir()), True, str(py), versions)


def setup(force: bool = False, log=None) -> LiteStatus:
    """Create the environment (idempotent). ``log`` receives progress lines."""
    say = log or (lambda _m: None)
    current = status()
    if current.ready and not force:
        return current
    exe, how = find_python310()
    target = env_dir()
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"creating {target} with {exe} (found via {how})")
    subprocess.run([exe, "-m", "venv", str(target)], check=True, capture_output=True)
    say(f"installing {', '.join(REQUIREMENTS)}")
    pip = subprocess.run([str(env_python()), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", *REQUIREMENTS, "pyyaml"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        last = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise LiteToolchainError(f"installing the Lite toolchain failed: {last}")
    result = status()
    if not result.ready:
        raise LiteToolchainError(f"the Lite environment at {target} does not work: {result.problem}")
    return result


def require() -> Path:
    """The Lite environment's interpreter, or a clear error saying how to create it."""
    st = status()
    if not st.ready:
        raise LiteToolchainError(f"Paddle Lite toolchain at {st.env} is {st.problem}")
    return env_python()


def package_root() -> Path:
    """A directory holding only the ``vitdeploy`` package (a link to this one), for the worker's
    PYTHONPATH: putting our own site-packages there would let Python 3.11 builds of numpy or
    paddle shadow the Lite environment's."""
    target = Path(__file__).resolve().parents[1]
    tag = hashlib.sha256(str(target).encode()).hexdigest()[:12]  # one per installed copy
    root = env_dir() / "vitdeploy-path" / tag
    link = root / "vitdeploy"
    if not (link.is_symlink() and link.resolve() == target):
        root.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    return root


def worker_command(*args: str) -> list[str]:
    return [str(require()), "-m", "vitdeploy.lite.worker", *args]


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
    env["PYTHONPATH"] = str(package_root())
    env["GLOG_minloglevel"] = "3"
    # keeps export/opt single-threaded; no cap on inference: 'serve' sets MKL's (and OpenMP's)
    # thread count per request, which overrides this (see worker._apply_x86_threads)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_worker(command: str, payload: dict, timeout: float | None = None) -> dict:
    """One worker call: JSON in (stdin: a ViT's int8 scales outgrow an argument), JSON out (last
    stdout line); errors become one line."""
    proc = subprocess.run(worker_command(command, "-"), input=json.dumps(payload),
                          capture_output=True, text=True, env=worker_env(), timeout=timeout)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    if lines:
        reply = json.loads(lines[-1])
        if "error" in reply:
            raise VitdeployError(reply["error"])
    if proc.returncode < 0:
        raise VitdeployError(f"the Lite worker crashed in '{command}' (signal {-proc.returncode})")
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise VitdeployError(f"the Lite worker failed in '{command}': {tail}")
