"""How a job's row changes at each step of its life, written once for both stores.

Each function takes the row as read (inside the store's transaction, locked) and returns the
columns to write; the store writes them and applies them to its copy with `apply`. Keeping the
rules here is what makes SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from adapter.jobs.model import JobRecord, JobStatus, NewJob, OutputFile
from adapter.jobs.store.common import check_terminal, later, without_nul, worker_stopped

Changes = dict[str, Any]


def new_row(job: NewJob, now: datetime) -> JobRecord:
    # Without U+0000, which PostgreSQL refuses (the door refuses it in what a client sends).
    return JobRecord(
        id=job.id,
        owner=job.owner,
        status=JobStatus.QUEUED,
        pipeline=job.pipeline,
        model_id=job.model_id,
        params=without_nul(job.params),
        metadata=without_nul(job.metadata),
        webhook=without_nul(job.webhook),
        parent_id=job.parent_id,
        idempotency_key=job.idempotency_key,
        attempts=0,
        max_attempts=job.max_attempts,
        created_at=now,
        updated_at=now,
    )


def apply(job: JobRecord, changes: Changes) -> JobRecord:
    return dataclasses.replace(job, **changes)


def claimed(job: JobRecord, worker_id: str, lease_s: float, now: datetime) -> Changes:
    # call_id stays: a new attempt after a restart re-attaches to the call the last one spawned.
    return {
        "status": JobStatus.RUNNING,
        "attempts": job.attempts + 1,
        "started_at": now,
        "updated_at": now,
        "progress_step": None,
        "progress_total": None,
        "lease_owner": worker_id,
        "lease_expires_at": later(now, lease_s),
    }


def ended(
    status: JobStatus,
    now: datetime,
    *,
    outputs: tuple[OutputFile, ...] = (),
    result_data: dict[str, Any] | None = None,
    error: str | None = None,
) -> Changes:
    check_terminal(status)
    return {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "outputs": outputs,
        "result_data": result_data or {},
        "error": error,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def released(job: JobRecord, error: str, now: datetime) -> Changes:
    """A running job its worker gave back (a retryable failure) or lost (its lease expired):
    canceled if that was asked, queued again while it has attempts left, else failed."""
    if job.cancel_requested:
        return ended(JobStatus.CANCELED, now)
    if job.attempts < job.max_attempts:
        # The error stays while it waits: the last attempt's reason for the retry.
        return {
            "status": JobStatus.QUEUED,
            "started_at": None,
            "updated_at": now,
            "progress_step": None,
            "progress_total": None,
            "error": error,
            "lease_owner": None,
            "lease_expires_at": None,
        }
    return ended(JobStatus.FAILED, now, error=error)


def expired(job: JobRecord, now: datetime) -> Changes:
    return released(job, worker_stopped(job.attempts), now)


def cancel(job: JobRecord, now: datetime) -> Changes | None:
    """queued: canceled now; running: flagged for its worker; None when it has already ended
    (the caller raises the conflict)."""
    if job.status is JobStatus.QUEUED:
        return ended(JobStatus.CANCELED, now)
    if job.status is JobStatus.RUNNING:
        return {"cancel_requested": True, "updated_at": now}
    return None


def holds(job: JobRecord | None, worker_id: str) -> bool:
    """Whether the worker still holds the job (a job taken over by another replica is not the
    old one's to change)."""
    return job is not None and job.status is JobStatus.RUNNING and job.lease_owner == worker_id
