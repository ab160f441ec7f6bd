"""Where a server listens: the socket bound before any model loads (a port in use is found
first; port 0 picks a free one), its URL, and what ``on_ready`` announces. A leaf shared by the
one-process server and the Ray Serve path."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError, VitdeployError
from .config import check_port


@dataclass
class Started:
    """Where the server listens, for the caller to announce (``on_ready``)."""

    url: str
    models: list[str]
    replicas: int = 1
    ray_address: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), not yet listening: a port in use is found before any model
    loads, and port 0 picks a free one."""
    check_port(port)
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise OptionError(f"--host {host!r} cannot be resolved: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, never a listener
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise VitdeployError(f"port {port} on {host} is already in use; stop what listens there "
                                 "or choose another --port") from None
        if e.errno == errno.EACCES:
            raise VitdeployError(f"no permission to listen on {host}:{port} (ports below 1024 need "
                                 "root); choose another --port") from None
        raise VitdeployError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
