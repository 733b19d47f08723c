"""What both job stores share: the page cursor, the clock, the words of the store's own errors,
and the webhook body of a job the store itself ends."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.jobs.model import JobRecord, JobStatus
from contract.errors import BadRequestError, ConflictError, NotFoundError

Clock = Callable[[], datetime]
# The body of the webhook event of a job that ended; the door passes its public view of the job.
PayloadBuilder = Callable[[JobRecord], dict[str, Any]]

# How long a fetched webhook delivery is held before another replica may take it again (the
# deliverer reports delivered/rescheduled well before, unless its process died).
DELIVERY_HOLD_S = 60.0


def without_nul(value: Any) -> Any:
    """The value with U+0000 removed from every string in it (dict keys too, recursively).

    PostgreSQL refuses that character in text and in jsonb, and a model's text sometimes has
    one (the tiny LLM's does): both stores remove it from all they write, so a job's result,
    error, params, metadata and webhook event always save, and the two stores hold the same.
    """
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_nul(v) for v in value)
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def default_payload(job: JobRecord) -> dict[str, Any]:
    """A webhook body when the door gives none: what a receiver needs to fetch the job."""
    return {
        "type": f"job.{job.status.value}",
        "id": job.id,
        "status": job.status.value,
        "error": job.error,
    }


def encode_cursor(created_at: datetime, job_id: str) -> str:
    """The opaque page cursor: the last row's (created_at, id), JSON in URL-safe base64."""
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), job_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    bad = BadRequestError("The cursor is not one a previous page of jobs returned.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(job_id, str) or when.tzinfo is None:
        raise bad
    return when, job_id


def check_limit(limit: int) -> None:
    if limit < 1:
        raise BadRequestError("limit must be at least 1.")


def check_terminal(status: JobStatus) -> None:
    if not status.terminal:
        raise ValueError(f"finish needs an ended status, not {status.value}")


def not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"No job {job_id}.")


def already_ended(job: JobRecord) -> ConflictError:
    return ConflictError(f"Job {job.id} has already ended ({job.status.value}).")


def worker_stopped(attempts: int) -> str:
    """The error of a job whose worker died (its lease expired) on its last attempt."""
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return f"The worker running it stopped; giving up after {tries}."
