"""Start ``vitdeploy serve`` as a user would (a real subprocess, on 127.0.0.1, port 0), wait until it
answers, and always stop it."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import ROOT

READY = re.compile(r"^serving .* at (http://[^\s]+) ")


@dataclass
class Server:
    proc: subprocess.Popen
    url: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def address(self) -> str:  # what tritonclient takes: host:port, no scheme
        return self.url.removeprefix("http://")

    def log_records(self) -> list[dict]:
        """The server's stderr: every line must be a JSON object (structured logs)."""
        lines = [ln for ln in self.log.read_text().splitlines() if ln.strip()]
        return [json.loads(ln) for ln in lines]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class ServerDidNotStart(RuntimeError):
    def __init__(self, message: str, log: str) -> None:
        super().__init__(f"{message}; its stderr:\n{log[-3000:]}")
        self.log = log


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


@contextlib.contextmanager
def running_server(*args: object, log: Path, timeout: float = 120,
                   own_group: bool = False) -> Iterator[Server]:
    """``own_group``: the server leads a process group of its own, as a command started from a
    shell does, so a test can signal the whole group as a terminal's Ctrl-C would."""
    cmd = [sys.executable, "-m", "vitdeploy.cli", "serve", *map(str, args)]
    if "--port" not in cmd:
        cmd += ["--port", "0"]
    env = {**os.environ, "GLOG_minloglevel": "2"}
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                process_group=0 if own_group else None)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    server = Server(proc, "", log)
    try:
        deadline = time.monotonic() + timeout
        while not server.url:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise ServerDidNotStart(f"no ready line within {timeout} s", log.read_text()) from None
            if line is None:
                proc.wait(30)
                raise ServerDidNotStart(f"the server exited with {proc.returncode}", log.read_text())
            if m := READY.match(line):
                server.url = m.group(1)
        while httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise ServerDidNotStart("never ready", log.read_text())
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
