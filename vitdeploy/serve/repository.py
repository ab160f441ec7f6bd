"""The served models with their batchers, metrics and the image-decoding threads: everything an
inference request goes through, without the web framework (``app.py`` routes to it)."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import VitdeployError, first_line
from .batcher import DynamicBatcher
from .config import ModelSpec, ServeOptions
from .metrics import Metrics
from .model import IMAGE_INPUT, VERSION, ServedModel
from .protocol import ProtocolError, encode_infer_response, parse_infer_request

log = logging.getLogger("vitdeploy.serve")
BIG_JSON = 256 * 1024  # a JSON request larger than this is parsed off the event loop


class Repository:
    def __init__(self, models: list[ServedModel], options: ServeOptions) -> None:
        self.models = {m.name: m for m in models}
        self.options = options
        self.ready = False
        self.metrics: Metrics | None = None
        self._batchers: dict[str, DynamicBatcher] = {}
        self._pre: ThreadPoolExecutor | None = None

    @classmethod
    def load(cls, specs: list[ModelSpec], options: ServeOptions) -> Repository:
        """Load every model (verified against its manifest), or none: one failure closes the rest."""
        loaded: list[ServedModel] = []
        try:
            for spec in specs:
                t0 = time.perf_counter()
                loaded.append(ServedModel(spec, options))
                m = loaded[-1]
                log.info("model loaded", extra={
                    "model": spec.name, "artifact": spec.directory,
                    "runtime": m.predictor.runtime.name, "load_s": round(time.perf_counter() - t0, 3)})
        except BaseException:
            for m in loaded:
                m.close()
            raise
        return cls(loaded, options)

    async def start(self) -> None:
        """Start the batchers on the running loop (the app's startup)."""
        from ..runtimes import physical_cores

        self.metrics = Metrics()
        self._pre = ThreadPoolExecutor(physical_cores(), thread_name_prefix="vitdeploy-decode")
        delay = self.options.max_queue_delay_ms / 1000
        for name, m in self.models.items():
            b = DynamicBatcher(m.run, m.executor, max_batch_size=self.options.max_batch_size,
                               max_queue_delay_s=delay, on_batch=self.metrics.batch_observer(name))
            b.start()
            self._batchers[name] = b
        self.ready = True

    async def stop(self) -> None:
        """Finish queued work, then release the models (the app's shutdown)."""
        self.ready = False
        for b in self._batchers.values():
            await b.stop()
        if self._pre is not None:
            self._pre.shutdown(wait=True)
        for m in self.models.values():
            m.close()
        log.info("stopped", extra={"models": list(self.models)})

    def model(self, name: str, version: str | None = None) -> ServedModel:
        m = self.models.get(name)
        if m is None:
            served = ", ".join(self.models) or "none"
            raise ProtocolError(f"unknown model '{name}'; this server serves: {served}", 404)
        if version not in (None, "", VERSION):
            raise ProtocolError(f"model '{name}' has no version '{version}' (versions: {VERSION})", 404)
        return m

    def index(self) -> list[dict]:
        state = "READY" if self.ready else "UNAVAILABLE"
        return [{"name": n, "version": VERSION, "state": state} for n in self.models]

    def _label(self, name: str) -> str:
        return name if name in self.models else "_unknown"  # no label per made-up name

    def count_refused(self, name: str, code: int) -> None:
        """A request refused before ``infer`` (its body: too large, stalled, cut off)."""
        if self.metrics is not None:
            self.metrics.requests.labels(self._label(name), str(code)).inc()

    async def infer(self, name: str, version: str | None, body: bytes,
                    header_length: str | None) -> tuple[bytes, int | None]:
        """The response body (and its JSON header length when it carries binary outputs)."""
        assert self.metrics is not None and self._pre is not None
        start, code, label = time.perf_counter(), 200, self._label(name)
        self.metrics.in_flight.inc()
        try:
            model = self.model(name, version)
            loop = asyncio.get_running_loop()
            json_size = int(header_length) if (header_length or "").isdigit() else len(body)
            if json_size > BIG_JSON:
                req = await loop.run_in_executor(self._pre, parse_infer_request, body, header_length)
            else:
                req = parse_infer_request(body, header_length)
            prepared = model.prepare(req)
            if prepared.kind == IMAGE_INPUT:
                await loop.run_in_executor(self._pre, model.preprocess, prepared)
            if not self.ready:
                raise ProtocolError("the server is shutting down", 503)
            assert prepared.tensor is not None
            out = await self._batchers[name].submit(prepared.tensor)
            return encode_infer_response(name, VERSION, req.id, model.respond(prepared, out))
        except ProtocolError as e:
            code = e.status
            raise
        except Exception as e:  # a bug or a runtime failure: one line to the client, details logged
            code = 500
            log.error("inference failed", exc_info=True, extra={"model": name})
            what = "" if isinstance(e, VitdeployError) else f"{type(e).__name__}: "
            raise ProtocolError(f"internal error: {what}{first_line(e)}", 500) from None
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(label, str(code)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - start)
