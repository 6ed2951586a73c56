"""Prometheus metrics of the API (prometheus-client), served at ``/metrics``.

Requests by route and status with latency histograms, jobs submitted and ended
(by outcome and error type), seconds of audio transcribed; queue depth per queue
and live workers are read when Prometheus scrapes.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware"]


class Metrics:
    """The API's series, in a registry of its own (tests may start several apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "asr_api_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "asr_api_request_seconds",
            "Time to answer a request (until the body starts, for streams)",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry,
        )
        self.submitted = Counter("asr_api_jobs_submitted", "Jobs enqueued", ["queue"], registry=self.registry)
        self.ended = Counter(
            "asr_api_jobs_ended",
            "Jobs the API saw end: SUCCESS, FAILURE (with the worker's error type) or REVOKED",
            ["state", "error_type"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "asr_api_audio_seconds",
            "Seconds of audio in the transcripts the API returned",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "asr_queue_depth", "Jobs waiting in a queue", ["queue"], registry=self.registry
        )
        self.workers = Gauge(
            "asr_workers_alive", "Workers that answered the last info broadcast", registry=self.registry
        )


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times each request under its route's template.

    (``/v1/jobs/{job_id}``, never the id.) Streams are timed until their body starts.
    Pure ASGI rather than ``BaseHTTPMiddleware``, which costs every request a task and
    a memory stream.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")  # Starlette puts itself in the scope before any middleware
        service = getattr(app.state, "service", None) if app is not None else None
        if scope["type"] != "http" or service is None:
            await self.app(scope, receive, send)
            return
        metrics: Metrics = service.metrics
        started = time.perf_counter()
        status = 500

        async def send_and_count(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = _template(scope)
                metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
                metrics.requests.labels(scope["method"], route, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_and_count)


def _template(scope: Scope) -> str:
    route = scope.get("route")  # set by the router on the shared scope
    return str(getattr(route, "path", "unmatched"))
