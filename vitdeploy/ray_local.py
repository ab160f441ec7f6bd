"""A local Ray instance in a session of its own: `serve --replicas N` and bulk `--ray auto`.

A terminal's Ctrl-C goes to the whole foreground process group, and ``kill -TERM -PGID`` (systemd,
supervisors) to a whole group too: had ``ray.init`` started Ray's GCS, raylet and helpers as our
children, they would get the signal as well and die under the server while it shuts down (it then
waited for a controller that was gone). So a small helper process, in a new session, starts Ray
with ``ray.init`` and holds it; ``vitdeploy serve`` connects to it as a second driver.

Invariants:
- signals sent to vitdeploy's process or process group never reach a Ray process;
- ``stop()`` leaves no process of that session: the helper's ``ray.shutdown()`` first, then
  SIGTERM and SIGKILL to whatever is left in the session;
- if vitdeploy dies without ``stop()`` (SIGKILL), the helper reads EOF on its stdin and shuts
  Ray down itself.

``python -m vitdeploy.ray_local CONFIG_JSON`` is the helper: it prints one JSON line,
``{"address": ...}`` or ``{"error": ...}``, then waits for its stdin to close.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .errors import VitdeployError
from .resources import child_env

START_TIMEOUT_S = 180.0  # Ray's first start on a cold 2-core machine takes ~10 s
STOP_TIMEOUT_S = 5.0  # the helper's own ray.shutdown(), before the session is killed


def session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (Linux /proc), this process excluded."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            if int(fields[3]) == sid and fields[0] != "Z":  # session, not a zombie
                pids.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def kill_session(sid: int, grace: float = 2.0) -> None:
    """SIGTERM to every process of the session, then SIGKILL to those still there."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.05)


def prepare_environment() -> None:
    """Call before ``import ray`` in a driver of a local instance (its helper inherits this):
    - loopback only (Ray's single-machine switch, read when ray is imported), rather than Ray's
      processes talking over the machine's network IP;
    - Ray's token auth with a token of this run's own (helper, driver and workers share it;
      nothing in ~/.ray), unless the user set an auth mode;
    - workers import this very vitdeploy (a worktree or checkout), not another install;
    - no usage stats phoned home."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if "RAY_AUTH_MODE" not in os.environ:
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


class LocalRay:
    """Start with ``start()`` (returns the GCS address for ``ray.init(address=...)``), end with
    ``stop()``; usable as a context manager."""

    def __init__(self, init_kwargs: dict[str, Any]) -> None:
        self.init_kwargs = init_kwargs
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile("w+", prefix="vitdeploy-ray-", suffix=".log")

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        env = child_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vitdeploy.ray_local", json.dumps(self.init_kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env,
            start_new_session=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        reply = _parse(line[0] if line else "")
        if "address" in reply:
            return reply["address"]
        why = reply.get("error") or self._last_log_line() or (
            f"no answer within {timeout:g} s" if not line else "it exited")
        self.stop()
        raise VitdeployError(f"Ray could not start: {why}")

    def _last_log_line(self) -> str:
        self._log.seek(0)
        lines = [ln.strip() for ln in self._log.read().splitlines() if ln.strip()]
        return lines[-1][:300] if lines else ""

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the helper's cue to ray.shutdown()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        kill_session(proc.pid)  # the session's id is the helper's pid (start_new_session)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._log.close()

    def __enter__(self) -> LocalRay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse(line: str) -> dict:
    try:
        reply = json.loads(line)
    except ValueError:
        return {}
    return reply if isinstance(reply, dict) else {}


def main() -> int:
    """The helper: start Ray, print its address, hold it until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only vitdeploy decides when Ray stops
    out = sys.stdout
    sys.stdout = sys.stderr  # Ray's own prints go to the log, not into the reply line
    try:
        import ray

        kwargs = json.loads(sys.argv[1])
        kwargs["logging_level"] = logging.WARNING
        context = ray.init(**kwargs)
        out.write(json.dumps({"address": context.address_info["gcs_address"]}) + "\n")
        out.flush()
    except Exception as e:  # one line for the parent
        out.write(json.dumps({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
                              if str(e).strip() else type(e).__name__}) + "\n")
        out.flush()
        return 1
    try:
        sys.stdin.read()  # EOF: stop() was called, or vitdeploy is gone
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
