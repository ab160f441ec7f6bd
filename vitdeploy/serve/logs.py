"""Structured logs: one JSON object per line, for log shippers (Loki, Elasticsearch, CloudWatch).

The library only logs (``logging.getLogger("vitdeploy.serve")``); the CLI calls
``configure_logging`` to send the server's records, and uvicorn's, to stderr as JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from typing import Any, TextIO

LOGGER = "vitdeploy.serve"
# attributes every LogRecord has: anything else was passed with extra={...} and is a field
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}  # uvicorn's terminal-coloured copy


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:  # the traceback goes to the log, never to a client
            entry["error"] = "".join(traceback.format_exception_only(*record.exc_info[:2])).strip()
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """JSON lines on ``stream`` (default: a duplicate of stderr's file descriptor, so the brief
    fd-2 redirection that captures image decoders' messages never swallows a log line)."""
    global _handler, _owned
    numeric = getattr(logging, level.upper(), None) if level.isalpha() else None
    if not isinstance(numeric, int):
        from ..errors import OptionError

        raise OptionError(f"unknown --log-level {level!r}; choose debug, info, warning or error")
    owned = None
    if stream is None:
        sys.stderr.flush()
        stream = owned = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    for name in (LOGGER, "uvicorn", "uvicorn.error", "ray.serve"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(numeric)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the server logs each request itself
    if _handler is not None:  # configured again (tests): release the previous duplicate of fd 2
        _handler.close()
    if _owned is not None:
        _owned.close()
    _handler, _owned = handler, owned
    return handler


_handler: logging.Handler | None = None
_owned: TextIO | None = None
