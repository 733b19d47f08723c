"""What each request earned and cost: Prometheus metrics at /metrics and one log line each.

Earned: the units go-livepeer debits for the request (`contract.units`), counted when it
succeeds, as go-livepeer only debits then; a streamed answer counts once it has started, as
go-livepeer has debited it by then, even if the stream is cut off later. Cost: the seconds the
backend spent on it (the GPU container's time on Modal), counted whatever the outcome, as Modal
bills failures too. An operator compares `units_total x price per unit` with
`gpu_seconds_total x the GPU's price`.

Each app has its own registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from contract.errors import RunnerError, UnitsError
from contract.pipelines import Pipeline
from contract.schemas import RequestModel
from contract.units import RequestFacts, request_units

logger = logging.getLogger("adapter.requests")

LABELS = ("pipeline", "model")
# From a fast GPU step to a long video job.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RunnerMetrics:
    """The adapter's request metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "runner_requests",
            "Generate requests by outcome (HTTP status, or 'cancelled').",
            (*LABELS, "status"),
            registry=self.registry,
        )
        self.units = Counter(
            "runner_units",
            "Units go-livepeer debits for the successful requests "
            "(pixels, ms of audio, tokens...; see contract.units).",
            LABELS,
            registry=self.registry,
        )
        self.gpu_seconds = Counter(
            "runner_gpu_seconds",
            "Seconds the backend spent running requests (what the GPU "
            "container is billed for), successful or not.",
            LABELS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "runner_inference_seconds",
            "Backend seconds per request.",
            LABELS,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "runner_queue_wait_seconds",
            "Seconds a request waited for a capacity slot.",
            LABELS,
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "runner_requests_in_flight",
            "Requests the backend is running now.",
            LABELS,
            registry=self.registry,
        )

    def request(self, pipeline: Pipeline) -> RequestRecord:
        return RequestRecord(self, pipeline)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class RequestRecord:
    """One request's figures, recorded when its `with` block ends."""

    def __init__(self, metrics: RunnerMetrics, pipeline: Pipeline) -> None:
        self.metrics = metrics
        self.pipeline = pipeline
        self.model = ""  # known once the request is routed
        self.units: int | None = None
        # Debited whatever the status: a stream whose answer started (go-livepeer debits once
        # the runner's answer begins, not when a stream cut off midway would have ended).
        self.debited = False
        self.queue_s = 0.0
        self.gpu_s = 0.0
        self._started = time.monotonic()
        self._queued_at: float | None = None

    def __enter__(self) -> RequestRecord:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            status = "200"
        elif isinstance(exc, RunnerError):
            status = str(exc.status_code)
        elif not isinstance(exc, Exception):
            status = "cancelled"  # the client went away (asyncio.CancelledError)
        else:
            status = "500"
        self._record(status)

    def count_units(self, request: RequestModel, facts: RequestFacts) -> None:
        """Note the units go-livepeer debits for `request` (if the request succeeds)."""
        try:
            self.units = request_units(request, facts)
        except UnitsError as exc:
            logger.debug("units of a %s request unknown: %s", self.pipeline.value, exc)

    def enter_queue(self) -> None:
        self._queued_at = time.monotonic()

    def leave_queue(self) -> None:
        if self._queued_at is not None:
            self.queue_s = time.monotonic() - self._queued_at
            self.metrics.queue_wait_seconds.labels(self.pipeline.value, self.model).observe(
                self.queue_s
            )

    @contextmanager
    def running(self) -> Iterator[None]:
        """Time the backend's work on the request."""
        labels = (self.pipeline.value, self.model)
        self.metrics.in_flight.labels(*labels).inc()
        start = time.monotonic()
        try:
            yield
        finally:
            self.gpu_s = time.monotonic() - start
            self.metrics.in_flight.labels(*labels).dec()
            self.metrics.gpu_seconds.labels(*labels).inc(self.gpu_s)
            self.metrics.inference_seconds.labels(*labels).observe(self.gpu_s)

    def _record(self, status: str) -> None:
        labels = (self.pipeline.value, self.model)
        self.metrics.requests.labels(*labels, status).inc()
        if (status == "200" or self.debited) and self.units is not None and self.units > 0:
            self.metrics.units.labels(*labels).inc(self.units)
        # logfmt: one line per request, easy to grep and to parse.
        logger.info(
            "request pipeline=%s model=%s status=%s units=%s gpu_seconds=%.3f "
            "queue_seconds=%.3f total_seconds=%.3f",
            self.pipeline.value,
            self.model or "-",
            status,
            "-" if self.units is None else self.units,
            self.gpu_s,
            self.queue_s,
            time.monotonic() - self._started,
        )


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # Unauthenticated, as the runner's own /metrics.
    body, content_type = request.app.state.service.metrics.render(request.headers.get("accept"))
    return Response(content=body, media_type=content_type)
