"""The job runner: claims queued jobs and runs each through the service, as a runner route would.

N claim loops (the jobs run at once) each take the next queued job under a lease, renew it every
third of the lease, and run the job's request through `RunnerService.handle`: the same model
routing, capacity slots, limits and metrics as the runner routes. A job's progress comes from its
pipeline's own step callback. With the Modal backend a job is a spawned call whose id is stored:
after a restart the job waits for that call again instead of running it twice.

A cancel (seen here at once, or by the heartbeat from another replica) stops the job between
steps and frees its capacity slot at once; a lost lease (another replica took the job over)
drops it without writing. Retryable failures (the model unavailable, an outage) requeue the job
up to its attempts; a bad request fails it at once. A recovery loop requeues (or fails) the jobs
of dead workers; a purge loop deletes ended jobs past retention.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.backends.base import RunHooks
from adapter.jobs.claims import ClaimedJob, Claims
from adapter.jobs.files import job_prefixes, store_outputs
from adapter.jobs.model import JobRecord, JobStatus
from adapter.jobs.outcomes import (
    SAVE_RETRY_DELAYS_S,
    SHUTDOWN_MSG,
    UNSAVED_MSG,
    may_pass,
    retryable,
)
from adapter.jobs.outputs.base import OutputStore
from adapter.jobs.progress import StepTracker
from adapter.jobs.requests import job_request
from adapter.jobs.settings import JobsSettings
from adapter.jobs.store.base import JobStore
from adapter.service import RunnerService
from contract.errors import InferenceError, OverloadedError, RunnerError
from contract.pipelines import PIPELINE_SPECS, Pipeline

logger = logging.getLogger(__name__)

# How long stop() waits for its loops to end once cancelled.
STOP_WAIT_S = 5.0


class JobRunner:
    def __init__(
        self,
        settings: JobsSettings,
        service: RunnerService,
        store: JobStore,
        outputs: OutputStore,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.store = store
        self.outputs = outputs
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.concurrency = settings.concurrency or max(
            1, sum(model.max_in_flight for model in service.models)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        # One claim at a time here, each only of a model with a free slot (adapter/jobs/claims.py).
        self._claiming = asyncio.Lock()
        self._claims = Claims(service)
        self._claimed: dict[str, ClaimedJob] = {}  # job id -> its count, until it ends
        self._work: dict[str, asyncio.Task[Any]] = {}  # job id -> its running request
        self._stops: dict[str, str] = {}  # job id -> why its work was stopped
        self.webhook_payload: Callable[[JobRecord], dict[str, Any]] | None = None
        self.on_webhook: Callable[[], None] | None = None  # an event was queued: send it now

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        # Before claiming: jobs a dead worker held go back to the queue (a restart's own ones
        # wait for their leases to expire; another replica may hold them).
        await self._recover()
        for limiter in self.service.limiters.values():
            limiter.add_listener(self.wake)  # a slot freed: a job of its model may start
        for index in range(self.concurrency):
            self._spawn(self._claim_loop(), f"jobs-claim-{index}")
        self._spawn(self._every(self.settings.poll_interval_s, self._recover), "jobs-recover")
        self._spawn(self._every(self.settings.purge_interval_s, self._purge), "jobs-purge")

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(work))
        self._tasks[-1].set_name(name)

    async def stop(self) -> None:
        """Stop claiming; the jobs running here go back to the queue (another replica or the
        next start runs them)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that ignored its cancellation is logged, never waited for forever
            # (a shutdown must end before the platform's kill).
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
            for task in pending:
                logger.warning("jobs: %s did not stop within %g s", task.get_name(), STOP_WAIT_S)
        self._tasks.clear()

    def wake(self) -> None:
        """A job was queued here: claim it now rather than at the next poll."""
        if self._wake is not None:
            self._wake.set()

    def cancel_local(self, job_id: str) -> bool:
        """Stop the job's work now if it runs here (its heartbeat would see the cancel too)."""
        return self._stop(job_id, "cancel")

    def _stop(self, job_id: str, why: str) -> bool:
        work = self._work.get(job_id)
        if work is None or work.done():
            return False
        self._stops.setdefault(job_id, why)
        work.cancel()
        return True

    # --- loops -----------------------------------------------------------------------------

    async def _every(self, interval_s: float, step: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await step()
            except Exception:
                logger.exception("jobs: %s failed", getattr(step, "__name__", step))

    async def _claim_loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                job = await self._claim()
            except Exception:
                logger.exception("jobs: claiming failed")
                job = None
            if job is None:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # cancellation of stop() when the wake-up comes at the same moment, and the
                # loop would never end.
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_interval_s):
                        await self._wake.wait()
                self._wake.clear()
                continue
            try:
                await self.run_job(job)
            except Exception:
                # The store failed as the job ended: its lease runs out and recovery queues it
                # again; this loop goes on claiming.
                logger.exception("jobs: ending %s failed", job.id)

    async def _claim(self) -> JobRecord | None:
        """The next job of a model with a free slot, counted against it (None: no such job),
        so a job shows `running` only when it can start, never while it waits for a slot."""
        async with self._claiming:
            free = self._claims.free_models()
            if not free:
                return None
            job = await self.store.claim(self.worker_id, self.settings.lease_s, free.keys())
            if job is not None:
                key = free[(job.pipeline, job.model_id)]
                self._claimed[job.id] = self._claims.claimed(key)
            return job

    async def _recover(self) -> None:
        for job in await self.store.recover(datetime.now(UTC)):
            logger.warning("jobs: %s's worker stopped: now %s", job.id, job.status.value)
        self.wake()

    async def _purge(self) -> None:
        before = datetime.now(UTC) - timedelta(seconds=self.settings.retention_s)
        for job_id in await self.store.purge(before):
            for prefix in job_prefixes(job_id):
                await self.outputs.delete_prefix(prefix)

    # --- one job ---------------------------------------------------------------------------

    async def run_job(self, job: JobRecord) -> None:
        """Run a claimed job to its end (or until it is taken from this worker)."""
        tracker = StepTracker(asyncio.get_running_loop())

        async def write_progress(step: int, total: int) -> None:
            await self.store.report_progress(job.id, self.worker_id, step, total)

        async def remember_call(call_id: str) -> None:
            await self.store.set_call_id(job.id, self.worker_id, call_id)

        claimed = self._claimed.pop(job.id, None) or self._claims.claimed("")
        hooks = RunHooks(
            on_step=tracker.on_step,
            on_call=remember_call,
            call_id=job.call_id,
            on_admitted=claimed.uncount,  # the limiter counts it while it holds the slot
        )
        work = asyncio.ensure_future(self._execute(job, hooks, claimed))
        self._work[job.id] = work
        helpers = [
            asyncio.ensure_future(self._heartbeat(job.id)),
            asyncio.ensure_future(tracker.write_each(write_progress)),
        ]
        try:
            try:
                response, summary = await asyncio.shield(work)
            except asyncio.CancelledError:
                why = self._stops.get(job.id)
                if why is None:  # the runner itself is stopping: give the job back
                    hooks.keep_call = True  # a Modal call goes on; the next start waits for it
                    work.cancel()
                    await self._give_back(job, SHUTDOWN_MSG)
                    raise
                if why == "cancel":
                    await self._finish(job, JobStatus.CANCELED)
                return  # "lost": another worker holds the job now; write nothing
            except RunnerError as exc:
                await self._failed(job, exc)
                return
            except Exception as exc:
                logger.exception("jobs: %s failed unexpectedly", job.id)
                await self._failed(job, exc)
                return
            await tracker.flush(write_progress)
            await self._finish(job, JobStatus.SUCCEEDED, outputs=response, result_data=summary)
        finally:
            claimed.end()  # its end is saved: the model's slot is free for the next job
            self.wake()
            for helper in helpers:
                helper.cancel()
            self._work.pop(job.id, None)
            self._stops.pop(job.id, None)

    async def _execute(
        self, job: JobRecord, hooks: RunHooks, claimed: ClaimedJob
    ) -> tuple[Any, dict[str, Any]]:
        spec = PIPELINE_SPECS[Pipeline(job.pipeline)]
        request = await job_request(spec, job, self.outputs)
        limit_s = self.service.resolve(spec.pipeline, job.model_id).request_timeout_s
        while True:
            try:
                async with asyncio.timeout(limit_s):
                    response = await self.service.handle(spec, request, hooks)
                break
            except OverloadedError as exc:
                # Every slot of the model is busy (runner routes share them): wait for one,
                # without spending an attempt; the job stays ours (the heartbeat runs).
                await asyncio.sleep(max(exc.retry_after_s, self.settings.poll_interval_s))
            except TimeoutError as exc:
                raise InferenceError(f"The job ran past its {limit_s:g} s time limit.") from exc
            finally:
                claimed.count()  # out of its slot, until its end is saved
        return await store_outputs(self.outputs, job.id, response, job.params)

    async def _heartbeat(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            try:
                row = await self.store.renew(job_id, self.worker_id, self.settings.lease_s)
            except Exception:
                logger.exception("jobs: renewing %s's lease failed", job_id)
                continue
            if row is None:
                logger.warning("jobs: %s was taken over by another worker", job_id)
                self._stop(job_id, "lost")
                return
            if row.cancel_requested:
                self._stop(job_id, "cancel")
                return

    async def _failed(self, job: JobRecord, error: BaseException) -> None:
        message = error.msg if isinstance(error, RunnerError) else "The job failed unexpectedly."
        if retryable(error):
            # A Modal call of this attempt is over (or gone): the next attempt spawns its own.
            with suppress(Exception):
                await self.store.set_call_id(job.id, self.worker_id, "")
            await self._give_back(job, message)
            self.wake()
        else:
            await self._finish(
                job, JobStatus.FAILED, error=message, result_data={"retryable": False}
            )

    async def _give_back(self, job: JobRecord, message: str) -> None:
        with suppress(Exception):
            await asyncio.shield(self.store.requeue(job.id, self.worker_id, message))

    async def _finish(
        self,
        job: JobRecord,
        status: JobStatus,
        *,
        outputs: Any = (),
        result_data: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        try:
            finished = await self._save_end(job, status, outputs, result_data, error)
        except Exception as exc:
            if may_pass(exc) or error == UNSAVED_MSG.format(type(exc).__name__):
                # The store is still down after every try: the lease runs out and recovery
                # queues the job again (an attempt spent, the work redone, nothing lost).
                raise
            # The store refuses this end for good: left running, the job would run again once
            # its lease expired and fail to save again, so it ends failed instead, with why.
            logger.exception("jobs: saving %s as %s failed", job.id, status.value)
            message, data = UNSAVED_MSG.format(type(exc).__name__), {"retryable": False}
            await self._finish(job, JobStatus.FAILED, result_data=data, error=message)
            return
        if finished is None:
            logger.warning("jobs: %s ended here but another worker holds it now", job.id)
        elif job.webhook is not None and self.on_webhook is not None:
            self.on_webhook()

    async def _save_end(
        self,
        job: JobRecord,
        status: JobStatus,
        outputs: Any,
        result_data: dict[str, Any] | None,
        error: str | None,
    ) -> JobRecord | None:
        """The store's `finish`, tried again after each of SAVE_RETRY_DELAYS_S while its error
        is one that may pass; any other error, and the last try's, is the caller's."""
        payload = None  # the webhook event, queued in the same transaction
        if job.webhook is not None and self.webhook_payload is not None:
            ended = replace(
                job,
                status=status,
                outputs=tuple(outputs),
                result_data=result_data or {},
                error=error,
                finished_at=datetime.now(UTC),
            )
            payload = self.webhook_payload(ended)

        async def save() -> JobRecord | None:
            return await self.store.finish(
                job.id,
                self.worker_id,
                status,
                outputs=outputs,
                result_data=result_data,
                error=error,
                webhook_payload=payload,
            )

        for delay in SAVE_RETRY_DELAYS_S:
            try:
                return await save()
            except Exception as exc:
                if not may_pass(exc):
                    raise
                logger.warning(
                    "jobs: saving %s as %s failed (%s: %s); trying again in %g s",
                    job.id,
                    status.value,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
        return await save()
