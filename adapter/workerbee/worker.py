"""The workerbee worker: one WebSocket to a dispatcher, kept up for the app's lifetime.

On each connection it registers (adapter.workerbee.registration), then answers the requests
that come (adapter.workerbee.jobs) one at a time: the protocol carries no job id, so replies
on one socket can only belong to the one job in progress. Beside that it tells the dispatcher
`{"busy": true}` while it cannot take a job (a job in progress, or a model it answers for with
no free slot, the HTTP routes' load included) and `{"busy": false}` once it can, re-asserting
"busy" every few seconds and right after a stream starts, when the dispatcher puts the worker
back in its rotation on its own.

The socket is kept alive with WebSocket pings; when it breaks, the worker reconnects with
exponential backoff and jitter (never longer than `backoff_max_s`) and registers again. A job
in flight when the socket breaks cannot be answered any more (a new socket is a new worker to
the dispatcher): it is stopped, logged and counted (`workerbee_jobs_total{outcome="lost"}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from adapter.openai.errors import SERVER_ERROR
from adapter.workerbee.jobs import JobAnswerer, JobError
from adapter.workerbee.registration import JOB_PIPELINES, registration, summary
from adapter.workerbee.signing import public_key

if TYPE_CHECKING:
    from adapter.capacity import CapacityLimiter
    from adapter.service import RunnerService
    from adapter.settings import Settings

logger = logging.getLogger(__name__)

BUSY_REFRESH_S = 2.0
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


class WorkerMetrics:
    def __init__(self, service: RunnerService) -> None:
        registry = service.metrics.registry
        self.connected = Gauge(
            "workerbee_connected", "1 while registered with the dispatcher.", registry=registry
        )
        self.registrations = Counter(
            "workerbee_registrations", "Registrations sent to the dispatcher.", registry=registry
        )
        self.jobs = Counter(
            "workerbee_jobs",
            "Dispatcher requests by outcome: ok, error, busy, timeout, or lost (the socket broke "
            "while it was in flight).",
            ("url", "outcome"),
            registry=registry,
        )


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: Callable[[], float]) -> float:
    """The wait before reconnection attempt `attempt` (0 first): exponential, capped at `max_s`,
    with "equal jitter" (between half and all of it) so that workers do not reconnect in step."""
    delay = min(max_s, initial_s * 2 ** min(attempt, 32))
    return float(delay / 2 + rng() * delay / 2)


class WorkerBee:
    def __init__(
        self,
        settings: Settings,
        service: RunnerService,
        nvml: Any | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.bee = settings.workerbee
        if self.bee.private_key:
            public_key(self.bee.private_key)  # a bad key is a ConfigError at start
        self.service = service
        self.nvml = nvml
        self.rng = rng
        self.jobs = JobAnswerer(service, self.bee.any_model)
        self.metrics = WorkerMetrics(service)
        self.limiters: list[CapacityLimiter] = [
            service.limiters[model.key]
            for model in service.models
            if model.pipeline in JOB_PIPELINES
        ]
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: ClientConnection | None = None
        self._job: asyncio.Task[None] | None = None
        self._busy_sent: bool | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for limiter in self.limiters:
            limiter.add_listener(self._changed.set)
        self._task = asyncio.create_task(self._run(), name="workerbee")

    async def stop(self) -> None:
        """Close the socket (a normal close the dispatcher sees) and end the worker."""
        self._stopping.set()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), CLOSE_TIMEOUT_S)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, CLOSE_TIMEOUT_S * 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    @property
    def busy(self) -> bool:
        """Whether the worker cannot take a job now."""
        job_running = self._job is not None and not self._job.done()
        return job_running or any(not limiter.has_free_slot for limiter in self.limiters)

    # --- the connection loop -----------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with connect(
                    self.bee.url,
                    open_timeout=CONNECT_TIMEOUT_S,
                    ping_interval=self.bee.ping_interval_s,
                    ping_timeout=self.bee.ping_timeout_s,
                    close_timeout=CLOSE_TIMEOUT_S,
                    max_size=None,
                ) as connection:
                    await self._register(connection)
                    attempt = 0
                    await self._serve(connection)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                if not self._stopping.is_set():
                    logger.warning("workerbee: connection to %s failed: %r", self.bee.url, exc)
            except Exception:
                logger.exception("workerbee: unexpected failure; reconnecting")
            finally:
                self.metrics.connected.set(0)
            if self._stopping.is_set():
                break
            delay = backoff_delay(
                attempt, self.bee.backoff_initial_s, self.bee.backoff_max_s, self.rng
            )
            attempt += 1
            logger.info("workerbee: reconnecting in %.2f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        logger.info("workerbee: stopped")

    async def _register(self, connection: ClientConnection) -> None:
        message = await asyncio.to_thread(registration, self.settings, self.service, self.nvml)
        await connection.send(json.dumps(message))
        self.metrics.registrations.inc()
        self.metrics.connected.set(1)
        logger.info("workerbee: registered with %s: %s", self.bee.url, summary(message))

    async def _serve(self, connection: ClientConnection) -> None:
        self._connection = connection
        # The dispatcher takes a new worker as free: say so only if it is not.
        self._busy_sent = False
        self._changed.set()
        announcer = asyncio.create_task(self._announce(connection), name="workerbee-busy")
        try:
            async for raw in connection:
                await self._receive(connection, raw)
            if not self._stopping.is_set():
                logger.warning("workerbee: the dispatcher closed the connection")
        finally:
            announcer.cancel()
            self._connection = None
            await self._drop_job()

    async def _receive(self, connection: ClientConnection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("workerbee: ignored a message that is not JSON: %.200r", raw)
            return
        if not isinstance(message, dict) or "openai_url" not in message:
            logger.debug("workerbee: ignored message %.200r", message)
            return
        url = str(message.get("openai_url"))
        if self._job is not None and not self._job.done():
            # Only a dispatcher that ignored "busy" sends a second job on a busy socket.
            logger.warning("workerbee: a request for %s came while one is in progress", url)
            self.metrics.jobs.labels(url, "busy").inc()
            await connection.send(json.dumps({"error": "busy", "error_type": "busy"}))
            return
        self._job = asyncio.create_task(
            self._answer(connection, url, message.get("openai_req")), name="workerbee-job"
        )
        self._changed.set()

    async def _answer(self, connection: ClientConnection, url: str, request: Any) -> None:
        outcome = "ok"
        sent = 0
        try:
            try:
                async with contextlib.aclosing(self.jobs.answer(url, request)) as replies:
                    async for reply in replies:
                        await connection.send(json.dumps(reply))
                        sent += 1
                        if sent == 1 and isinstance(request, dict) and request.get("stream"):
                            # The dispatcher puts a streaming worker back in its rotation as
                            # soon as the first chunk comes: take it out again.
                            self._busy_sent = None
                            self._changed.set()
            except JobError as exc:
                outcome = exc.outcome
                await connection.send(json.dumps(exc.reply))
            except (ConnectionClosed, asyncio.CancelledError):
                raise
            except Exception:
                outcome = "error"
                logger.exception("workerbee: the request for %s failed", url)
                error = {"error": "The worker failed to answer.", "error_type": SERVER_ERROR}
                await connection.send(json.dumps(error))
        except (ConnectionClosed, asyncio.CancelledError) as exc:
            outcome = "lost"
            logger.error(
                "workerbee: a request for %s was in flight when the connection to the "
                "dispatcher ended (%d replies sent); it was stopped and is not answered",
                url,
                sent,
            )
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.metrics.jobs.labels(url, outcome).inc()
            self._changed.set()

    async def _drop_job(self) -> None:
        job, self._job = self._job, None
        if job is not None and not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

    async def _announce(self, connection: ClientConnection) -> None:
        """Send `{"busy": ...}` whenever it changes, and re-assert "busy" every few seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), BUSY_REFRESH_S)
            self._changed.clear()
            busy = self.busy
            if busy != self._busy_sent or busy:
                await connection.send(json.dumps({"busy": busy}))
                self._busy_sent = busy
