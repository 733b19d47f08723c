"""What a job is, as stored and as shown: shared by the store, the runner and the routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from contract.errors import QueueFullError


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True)
class OutputFile:
    """One stored output of a job: its name within the job, type and size in bytes."""

    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class NewJob:
    """A job as submitted, once its request is validated (the store gives it an id and times)."""

    id: str
    owner: str  # a hash of the token that submitted it ("" when auth is off)
    pipeline: str
    model_id: str
    params: dict[str, Any]  # the pipeline's request as JSON; uploads as {"$upload": field}
    max_attempts: int
    metadata: dict[str, Any] = field(default_factory=dict)
    webhook: str | None = None
    parent_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class JobRecord:
    """A job row as the store holds it."""

    id: str
    owner: str
    status: JobStatus
    pipeline: str
    model_id: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    webhook: str | None
    parent_id: str | None
    idempotency_key: str | None
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress_step: int | None = None
    progress_total: int | None = None
    error: str | None = None
    outputs: tuple[OutputFile, ...] = ()
    result_data: dict[str, Any] = field(default_factory=dict)  # seed, nsfw, text...
    cancel_requested: bool = False
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    call_id: str | None = None  # a Modal spawned call's id, so a restart re-attaches to it


@dataclass(frozen=True)
class JobQuery:
    """A page of jobs, newest first; `cursor` is the opaque value a previous page returned."""

    owner: str | None = None  # None: every owner's jobs (auth off)
    status: JobStatus | None = None
    pipeline: str | None = None
    model_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class JobPage:
    """A page of jobs and the queue positions of its queued ones, read in one snapshot (a job
    claimed between two separate reads would show as queued with no position)."""

    jobs: list[JobRecord]
    next_cursor: str | None
    positions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookDelivery:
    """One pending webhook event (the outbox row), written when its job ends."""

    id: int
    job_id: str
    url: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class QueueLimits:
    """The most jobs queued at once, in all and for one owner. The store checks them in the
    transaction that queues a job, so submissions at the same moment cannot pass them together."""

    total: int
    per_owner: int
    retry_after_s: int

    def check(self, queued: int, owner_queued: int) -> None:
        """429 (QueueFullError) when one more job would pass a limit."""
        if queued >= self.total:
            raise QueueFullError(
                f"The jobs queue is full ({queued} queued, ADAPTER_JOBS_MAX_QUEUED="
                f"{self.total}). Retry later.",
                self.retry_after_s,
            )
        if owner_queued >= self.per_owner:
            raise QueueFullError(
                f"This token has {owner_queued} jobs queued, the most one token may "
                f"(ADAPTER_JOBS_MAX_QUEUED_PER_TOKEN={self.per_owner}). Retry later.",
                self.retry_after_s,
            )
