"""Connection limits for the one-process server: a deadline for a request's headers.

uvicorn closes a kept-alive connection that stays silent after a response (``timeout_keep_alive``),
but nothing closes a fresh connection that never sends a request, or one that sends half its
headers and stops: 200 such connections stayed open for ever. This protocol adds the deadline.

Invariant: a connection waiting for a request's headers (none received yet, or the previous
response complete), silent or half-sent, is closed once it has waited ``header_timeout`` seconds
(checked every quarter of it, so within 1.25x); a request whose headers arrived is never cut
here — its body has its own idle timeout, in ``app.read_body``.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _base() -> type:
    """uvicorn's fast protocol (httptools) when installed, else its pure-Python one (h11)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # uvicorn without its [standard] extras
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def protocol_class(header_timeout: float) -> type:
    """A uvicorn HTTP protocol class (``uvicorn.Config(http=...)``) with the header deadline."""
    base = _base()

    class HeaderDeadline(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._waiting: tuple[int, float] | None = None  # (which wait, since when)
            self._deadline: asyncio.TimerHandle | None = None
            self._check_headers()

        def _check_headers(self) -> None:
            if self.transport.is_closing():
                return
            cycle, now = self.cycle, self.loop.time()
            if cycle is None or cycle.response_complete:  # waiting for a request's headers
                key = id(cycle) if cycle is not None else 0
                if self._waiting is None or self._waiting[0] != key:
                    self._waiting = (key, now)
                elif now - self._waiting[1] >= header_timeout:
                    self.transport.close()
                    return
            else:
                self._waiting = None
            self._deadline = self.loop.call_later(header_timeout / 4, self._check_headers)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return HeaderDeadline


def uvicorn_limits(header_timeout: float, keep_alive: float, max_connections: int) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords for the limits: the protocol above, uvicorn's keep-alive
    timeout, and its concurrency limit (answers 503 beyond ``max_connections``)."""
    return {"http": protocol_class(header_timeout), "timeout_keep_alive": keep_alive,
            "limit_concurrency": max_connections}
