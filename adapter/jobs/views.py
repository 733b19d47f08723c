"""The public JSON of a job (`GET /v1/jobs/{id}`, the events, the webhook body), as models the
OpenAPI document shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from adapter.jobs.errors import JOBS_PREFIX
from adapter.jobs.model import JobRecord, JobStatus


class JobProgress(BaseModel):
    step: int = Field(description="Denoising steps done (llm, image-to-text: tokens generated).")
    total: int = Field(
        description="Steps the pipeline runs (llm, image-to-text: the most tokens it may generate)."
    )
    fraction: float = Field(description="step / total, 0 to 1.")


class JobError(BaseModel):
    message: str
    retryable: bool = Field(
        description="Whether submitting the job again may succeed (the failure was not the "
        "request's fault)."
    )


class JobOutput(BaseModel):
    name: str
    content_type: str
    size: int = Field(description="Bytes.")
    url: str = Field(description="Where to download it (with the same bearer token).")


class JobResult(BaseModel):
    outputs: list[JobOutput]
    data: dict[str, Any] = Field(description="Seeds, nsfw flags, text of the result.")


class JobUrls(BaseModel):
    self: str
    events: str
    result: str
    cancel: str
    enhance: str


class Job(BaseModel):
    """A job as the API shows it; times are ISO-8601 UTC."""

    id: str
    status: JobStatus
    pipeline: str
    model_id: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    webhook: str | None
    parent_id: str | None
    queue_position: int | None = Field(description="Jobs ahead of it (0: next), while queued.")
    progress: JobProgress | None = Field(description="Null until the first step is done.")
    attempts: int
    max_attempts: int
    error: JobError | None
    result: JobResult | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    urls: JobUrls


class JobList(BaseModel):
    data: list[Job]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


def _utc(when: datetime | None) -> datetime | None:
    return when.astimezone(UTC) if when is not None else None


def job_view(job: JobRecord, queue_position: int | None = None, root: str = "") -> Job:
    base = f"{root}{JOBS_PREFIX}/{job.id}"
    progress = None
    if job.progress_total:
        step = job.progress_step or 0
        fraction = round(min(1.0, step / job.progress_total), 4)
        progress = JobProgress(step=step, total=job.progress_total, fraction=fraction)
    error = None
    if job.error is not None and job.status is not JobStatus.SUCCEEDED:
        retry = job.status is not JobStatus.FAILED or job.result_data.get("retryable", True)
        error = JobError(message=job.error, retryable=bool(retry))
    result = None
    if job.status is JobStatus.SUCCEEDED:
        outputs = [
            JobOutput(
                name=file.name,
                content_type=file.content_type,
                size=file.size,
                url=f"{base}/outputs/{file.name}",
            )
            for file in job.outputs
        ]
        data = {k: v for k, v in job.result_data.items() if k != "retryable"}
        result = JobResult(outputs=outputs, data=data)
    return Job(
        id=job.id,
        status=job.status,
        pipeline=job.pipeline,
        model_id=job.model_id,
        params=job.params,
        metadata=job.metadata,
        webhook=job.webhook,
        parent_id=job.parent_id,
        queue_position=queue_position if job.status is JobStatus.QUEUED else None,
        progress=progress,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=error,
        result=result,
        created_at=job.created_at.astimezone(UTC),
        started_at=_utc(job.started_at),
        finished_at=_utc(job.finished_at),
        updated_at=job.updated_at.astimezone(UTC),
        urls=JobUrls(
            self=base,
            events=f"{base}/events",
            result=f"{base}/result",
            cancel=f"{base}/cancel",
            enhance=f"{base}/enhance",
        ),
    )


def webhook_body(job: JobRecord) -> dict[str, Any]:
    """The webhook event of a job that ended: its type and the job as the API shows it."""
    from adapter.jobs.webhooks import event_payload

    return event_payload(job_view(job).model_dump(mode="json"))
