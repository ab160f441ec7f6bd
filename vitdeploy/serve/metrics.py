"""Prometheus metrics (``GET /metrics``): requests, latency, queue time, batch sizes, process memory.

One registry per app (not the library's global one), created when the app starts: a Ray Serve
replica builds its own, and tests that start several apps do not collide."""

from __future__ import annotations

from .batcher import BatchStats

LATENCY_BUCKETS = (.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .25, .5, 1.0,
                   2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        PlatformCollector(registry=r)
        self.requests = Counter("vitdeploy_requests", "Inference requests answered, by HTTP code.",
                                ["model", "code"], registry=r)
        self.latency = Histogram("vitdeploy_request_duration_seconds",
                                 "Inference request time in the server: body read to response.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Histogram("vitdeploy_queue_duration_seconds",
                               "Time a request waited in the dynamic batcher before its batch ran.",
                               ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram("vitdeploy_inference_duration_seconds",
                                 "Model run time per batch (the runtime's predict).",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("vitdeploy_batch_size", "Rows per batch the model ran.",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("vitdeploy_batch_requests", "Requests per batch.",
                                        ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.in_flight = Gauge("vitdeploy_requests_in_flight", "Inference requests being served.",
                               registry=r)

    def batch_observer(self, model: str):
        queue, compute = self.queue.labels(model), self.compute.labels(model)
        size, reqs = self.batch_size.labels(model), self.batch_requests.labels(model)

        def observe(stats: BatchStats) -> None:
            for q in stats.queue_s:
                queue.observe(q)
            compute.observe(stats.run_s)
            size.observe(stats.rows)
            reqs.observe(stats.requests)

        return observe

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
