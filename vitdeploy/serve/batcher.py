"""Dynamic batching: requests are gathered on the event loop and run as one batch in the model's
own worker thread, then split back, row for row, to the requests they came from.

A batch closes when it holds ``max_batch_size`` rows or when its oldest request has waited
``max_queue_delay`` (as Triton's dynamic batcher does: the delay counts from the oldest request,
so requests that queued while the previous batch ran go at once). Requests keep their order; one
larger than ``max_batch_size`` runs alone. Each request's rows are exactly the rows it sent, and
the runtimes compute rows independently, so batching does not change an answer (tested)."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BatchStats:
    """What one batch did, for metrics: per request its queue time; the batch's size and run time."""

    rows: int
    requests: int
    queue_s: list[float]
    run_s: float


@dataclass
class _Item:
    tensor: np.ndarray
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(self, run: Callable[[np.ndarray], np.ndarray], executor: Executor, *,
                 max_batch_size: int = 8, max_queue_delay_s: float = 0.002,
                 on_batch: Callable[[BatchStats], None] | None = None) -> None:
        self._run, self._executor = run, executor
        self.max_batch_size, self.max_queue_delay_s = max_batch_size, max_queue_delay_s
        self._on_batch = on_batch
        self._pending: collections.deque[_Item] = collections.deque()
        self._pending_rows = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        """Start gathering (on the running event loop)."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="vitdeploy-batcher")

    async def submit(self, tensor: np.ndarray) -> np.ndarray:
        """The model's output rows for ``tensor`` ([N, ...] -> [N, classes])."""
        if self._task is None or self._stopping:
            raise RuntimeError("the batcher is not running")
        item = _Item(tensor, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._pending_rows += len(tensor)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    def _take(self) -> list[_Item]:
        items = [self._pending.popleft()]
        rows = len(items[0].tensor)
        while self._pending and rows + len(self._pending[0].tensor) <= self.max_batch_size:
            items.append(self._pending.popleft())
            rows += len(items[-1].tensor)
        self._pending_rows -= rows
        return items

    async def _gather(self) -> None:
        """Wait until the pending rows fill a batch or the oldest request's delay is over."""
        assert self._wakeup is not None
        deadline = self._pending[0].enqueued + self.max_queue_delay_s
        while self._pending_rows < self.max_batch_size and not self._stopping:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_batch_size > 1 and self.max_queue_delay_s > 0:
                await self._gather()
            items = self._take()
            started = time.perf_counter()
            batch = items[0].tensor if len(items) == 1 else np.concatenate([i.tensor for i in items])
            try:
                out = await loop.run_in_executor(self._executor, self._run, batch)
            except Exception as e:  # every request of the batch gets the error
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            run_s = time.perf_counter() - started
            pos = 0
            for item in items:
                n = len(item.tensor)
                if not item.future.done():  # a request cancelled meanwhile (client gone)
                    item.future.set_result(out[pos:pos + n])
                pos += n
            if self._on_batch is not None:
                self._on_batch(BatchStats(len(batch), len(items),
                                          [started - i.enqueued for i in items], run_s))
