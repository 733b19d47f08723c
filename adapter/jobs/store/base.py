"""The job store's interface; SQLite (one process) and PostgreSQL (several replicas) behave
the same, and one test module runs against both."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from adapter.jobs.model import (
    JobPage,
    JobQuery,
    JobRecord,
    JobStatus,
    NewJob,
    OutputFile,
    QueueLimits,
    WebhookDelivery,
)


class JobStore(Protocol):
    async def open(self) -> None:
        """Connect and apply any schema migrations not yet applied."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int:
        """The last migration applied (adapter.jobs.store.migrations.LATEST once open)."""

    async def create(
        self, job: NewJob, limits: QueueLimits | None = None
    ) -> tuple[JobRecord, bool]:
        """Store a queued job; with an idempotency key already used by the same owner, the
        existing job and False instead. With `limits`, the queue is counted in the same
        transaction, one create at a time, and a full one refused (QueueFullError)."""

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def get_placed(self, job_id: str) -> tuple[JobRecord, int | None] | None:
        """The job and how many queued jobs are ahead of it (0: next; None unless it is
        queued), read in one snapshot so a queued job always has its position."""

    async def page(self, query: JobQuery) -> JobPage:
        """A page and, in the same snapshot, the positions of its queued jobs (one query for
        all of them, none when the page holds no queued job)."""

    async def count_queued(self, owner: str | None = None) -> int: ...

    async def claim(
        self, worker_id: str, lease_s: float, models: Collection[tuple[str, str]] | None = None
    ) -> JobRecord | None:
        """Take the next queued job, fair between owners, as running under a lease; with
        `models`, only a job of one of those (pipeline, model_id) pairs (None: any)."""

    async def renew(self, job_id: str, worker_id: str, lease_s: float) -> JobRecord | None:
        """Extend the lease; the row (its cancel_requested tells the runner to stop) or None
        when this worker no longer holds the job."""

    async def report_progress(self, job_id: str, worker_id: str, step: int, total: int) -> None: ...

    async def set_call_id(self, job_id: str, worker_id: str, call_id: str) -> None: ...

    async def finish(
        self,
        job_id: str,
        worker_id: str,
        status: JobStatus,
        *,
        outputs: tuple[OutputFile, ...] = (),
        result_data: dict[str, Any] | None = None,
        error: str | None = None,
        webhook_payload: dict[str, Any] | None = None,
    ) -> JobRecord | None:
        """End a job this worker holds; its webhook event (if any) is queued in the same
        transaction. None when the worker lost the job (another replica took it over)."""

    async def requeue(self, job_id: str, worker_id: str, error: str) -> JobRecord | None:
        """Give a held job back to the queue after a retryable failure (failed past its
        attempts)."""

    async def request_cancel(self, job_id: str) -> JobRecord:
        """queued -> canceled at once; running -> cancel_requested; a job already ended
        raises contract.errors.ConflictError (unknown: NotFoundError)."""

    async def recover(self, now: datetime) -> list[JobRecord]:
        """Running jobs whose lease expired: queued again, or failed with a reason past their
        attempts. Returns the jobs it changed."""

    async def purge(self, finished_before: datetime) -> list[str]:
        """Delete ended jobs finished before the time; their ids (the caller deletes outputs)."""

    async def due_deliveries(self, now: datetime, limit: int) -> list[WebhookDelivery]: ...

    async def delivered(self, delivery_id: int) -> None: ...

    async def reschedule_delivery(
        self, delivery_id: int, next_attempt_at: datetime | None, error: str
    ) -> None:
        """After a failed attempt: try again at the time, or give up (None)."""
