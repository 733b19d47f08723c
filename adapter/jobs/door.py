"""The jobs door's parts wired together: store, output store, runner, webhook sender; and what
its routes do (submit, read, cancel, enhance), apart from HTTP."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapter.jobs.files import input_key, job_prefixes
from adapter.jobs.model import (
    JobPage,
    JobQuery,
    JobRecord,
    JobStatus,
    NewJob,
    OutputFile,
    QueueLimits,
)
from adapter.jobs.outputs.base import OutputStore
from adapter.jobs.requests import build_request, load_uploads, stored_params
from adapter.jobs.runner import JobRunner
from adapter.jobs.store.base import JobStore
from adapter.jobs.webhooks import WebhookSender, check_webhook_url
from adapter.pipelines import glue_for
from adapter.service import RunnerService
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import (
    BadRequestError,
    ConflictError,
    LimitExceededError,
    NotFoundError,
    UnknownModelError,
)
from contract.pipelines import PIPELINE_SPECS, Pipeline, PipelineSpec
from contract.schemas import Upload

logger = logging.getLogger(__name__)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_IDEMPOTENCY_KEY = 255


def new_job_id() -> str:
    """`job_` and a ULID: 48 bits of milliseconds then 80 random bits, in Crockford base32, so
    ids sort by creation time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5)]
    return "job_" + "".join(chars)


def owner_of(token: str | None, auth_on: bool) -> str:
    """Whose jobs a token sees: a hash of it (never the token itself); "" with auth off."""
    if not auth_on or token is None:
        return ""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def nul_at(value: Any, path: str) -> str | None:
    """Where in a submitted value a string holds U+0000 (which PostgreSQL cannot store)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{path}.{key!r}"
        found = nul_at(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


class JobSubmission(BaseModel):
    """`POST /v1/jobs` as JSON (as multipart: the same fields, `params` and `metadata` as JSON
    text or the params as fields of their own, and the pipeline's file fields)."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(description="The pipeline, e.g. text-to-image.")
    model_id: str = Field("", description="A served model of it; empty: its default.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The pipeline's request, as its runner route takes it."
    )
    webhook: str | None = Field(
        None, description="http(s) URL that gets the job's signed event when it ends."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Anything of yours, returned with the job."
    )


@dataclass
class JobsDoor:
    settings: Settings
    service: RunnerService
    store: JobStore
    outputs: OutputStore
    runner: JobRunner
    webhooks: WebhookSender | None = None  # with ADAPTER_JOBS_WEBHOOK_SECRET

    @property
    def auth_on(self) -> bool:
        return bool(self.service.tokens)

    def guarded_paths(self) -> dict[str, str]:
        """The POST paths whose token is checked before their body is read (an upload)."""
        from adapter.jobs.errors import JOBS_PREFIX
        from adapter.jobs.routes import UNAUTHORIZED_MSG

        return {JOBS_PREFIX: UNAUTHORIZED_MSG, JOBS_PREFIX + "/": UNAUTHORIZED_MSG}

    async def start(self) -> None:
        await self.store.open()
        await self.outputs.open()
        await self.runner.start()
        if self.webhooks is not None:
            self.webhooks.start()

    async def close(self) -> None:
        await self.runner.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.store.close()
        await self.outputs.close()

    # --- submit ----------------------------------------------------------------------------

    def route(self, pipeline: str, model_id: str) -> tuple[PipelineSpec, ServedModel]:
        try:
            spec = PIPELINE_SPECS[Pipeline(pipeline)]
        except ValueError:
            raise UnknownModelError(
                f"Unknown pipeline {pipeline!r}. Served: {self.service.served_summary()}."
            ) from None
        return spec, self.service.resolve(spec.pipeline, model_id)

    async def submit(
        self,
        owner: str,
        submission: JobSubmission,
        uploads: dict[str, Upload],
        idempotency_key: str | None,
        parent_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Check a job as its runner route would (400 at once), keep its uploads, queue it."""
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise BadRequestError(
                f"The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} characters."
            )
        fields = submission.model_dump().items()
        nul = next((at for name, v in fields if (at := nul_at(v, name)) is not None), None)
        if nul is not None:
            raise BadRequestError(f"{nul} holds a NUL character (U+0000), which jobs cannot store.")
        secret = self.settings.jobs.webhook_secret.get_secret_value()
        check_webhook_url(submission.webhook, secret)
        self._check_metadata(submission.metadata)
        spec, model = self.route(submission.pipeline, submission.model_id)
        unknown = sorted(set(uploads) - set(spec.upload_fields))
        if unknown:
            takes = ", ".join(spec.upload_fields) or "none"
            raise BadRequestError(
                f"{unknown[0]!r} is not a file field of {spec.pipeline.value} (it takes: {takes})."
            )
        request = build_request(spec, model.model_id, submission.params, uploads)
        await glue_for(spec.pipeline).prepare(request, self.settings.limits)
        # The store checks the limits in the transaction that queues the job, which is what
        # holds under concurrency (after the key's replay: a replay is never refused). Without
        # a key, a full queue is refused here too, before any upload is stored; with one, the
        # store refuses it and the uploads are deleted.
        limits = self._queue_limits()
        if idempotency_key is None:
            limits.check(await self.store.count_queued(), await self.store.count_queued(owner))
        job_id = new_job_id()
        # Uploads first: once the row commits, a restart must find them.
        for name, upload in uploads.items():
            kind = upload.content_type or "application/octet-stream"
            await self.outputs.put(input_key(job_id, name), upload.data, kind)
        new = NewJob(
            id=job_id,
            owner=owner,
            pipeline=spec.pipeline.value,
            model_id=model.model_id,
            params=stored_params(spec, request),
            max_attempts=self.settings.jobs.max_attempts,
            metadata=submission.metadata,
            webhook=submission.webhook,
            parent_id=parent_id,
            idempotency_key=idempotency_key,
        )
        try:
            job, created = await self.store.create(new, limits)
        except BaseException:
            await self._forget_inputs(job_id)
            raise
        if created:
            self.runner.wake()
        else:
            await self._forget_inputs(job_id)  # the key's first job has its own
        return job, created

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        limit = self.settings.jobs.max_metadata_bytes
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > limit:
            raise LimitExceededError(
                f"metadata is {size} bytes as JSON, over the limit "
                f"ADAPTER_JOBS_MAX_METADATA_BYTES={limit}."
            )

    async def _forget_inputs(self, job_id: str) -> None:
        try:
            await self.outputs.delete_prefix(job_prefixes(job_id)[1])
        except Exception:
            logger.exception("jobs: could not delete the unused uploads of %s", job_id)

    def _queue_limits(self) -> QueueLimits:
        jobs = self.settings.jobs
        return QueueLimits(jobs.max_queued, jobs.queued_per_token(), self.settings.retry_after_s)

    # --- read ------------------------------------------------------------------------------

    async def owned(self, owner: str, job_id: str) -> JobRecord:
        """The caller's job; 404 for an unknown one and for another token's (never 403: ids
        of other callers' jobs are not confirmed)."""
        job = await self.store.get(job_id) if job_id.startswith("job_") else None
        if job is None or (self.auth_on and job.owner != owner):
            raise NotFoundError(f"No job {job_id}.")
        return job

    async def placed(self, job: JobRecord) -> tuple[JobRecord, int | None]:
        """The job to show and its queue position. A queued job is read again with its
        position in one snapshot: a runner may have claimed it since `job` was read."""
        if job.status is not JobStatus.QUEUED:
            return job, None
        return await self.store.get_placed(job.id) or (job, None)

    async def page(self, owner: str, query: JobQuery) -> JobPage:
        from dataclasses import replace

        return await self.store.page(replace(query, owner=owner if self.auth_on else None))

    async def output(self, owner: str, job_id: str, name: str | None) -> OutputFile:
        """One output of a succeeded job (the first when `name` is None)."""
        job = await self.owned(owner, job_id)
        if job.status is not JobStatus.SUCCEEDED:
            raise ConflictError(f"Job {job_id} has no result: it is {job.status.value}.")
        for file in job.outputs:
            if name is None or file.name == name:
                return file
        if name is None:
            raise NotFoundError(f"Job {job_id} has no output files.")
        raise NotFoundError(f"Job {job_id} has no output {name!r}.")

    # --- cancel, enhance -------------------------------------------------------------------

    async def cancel(self, owner: str, job_id: str) -> JobRecord:
        await self.owned(owner, job_id)
        job = await self.store.request_cancel(job_id)
        self.runner.cancel_local(job_id)
        return job

    def enhanced_settings(self, spec: PipelineSpec, model: ServedModel) -> dict[str, Any]:
        return {**spec.enhance, **(model.runner.enhance or {})}

    async def enhance(
        self, owner: str, job_id: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        """A new job of the same prompt, seed and inputs with the model's enhanced settings."""
        parent = await self.owned(owner, job_id)
        if parent.status is not JobStatus.SUCCEEDED:
            raise ConflictError(
                f"Job {job_id} is {parent.status.value}: only a succeeded job can be enhanced."
            )
        spec, model = self.route(parent.pipeline, parent.model_id)
        changes = self.enhanced_settings(spec, model)
        if not changes:
            raise BadRequestError(
                f"{spec.pipeline.value} has no enhanced settings: set runner.enhance in the "
                f"model's aiModels.json entry."
            )
        params = {k: v for k, v in parent.params.items() if k not in spec.upload_fields}
        seed = parent.result_data.get("seed")
        if "seed" in spec.request.model_fields and seed is not None:
            params["seed"] = seed  # the draft's own seed, even where it asked for a random one
        enhanced = _enhanced(spec, params, changes, self.settings.limits.max_inference_steps)
        if all(enhanced[key] == _draft_value(spec, params, key) for key in changes):
            raise ConflictError(
                f"Job {job_id} already ran with its enhanced settings ("
                + ", ".join(f"{key}={enhanced[key]}" for key in changes)
                + ") and at ADAPTER_MAX_INFERENCE_STEPS: submit it again with the settings you "
                "want."
            )
        params |= enhanced
        uploads = await load_uploads(spec, parent.id, parent.params, self.outputs)
        submission = JobSubmission(
            pipeline=parent.pipeline,
            model_id=parent.model_id,
            params=params,
            webhook=parent.webhook,
            metadata=parent.metadata,
        )
        return await self.submit(owner, submission, uploads, idempotency_key, parent.id)


STEPS = "num_inference_steps"


def _draft_value(spec: PipelineSpec, params: dict[str, Any], key: str) -> Any:
    """What the draft ran with: its own value, else the request's default."""
    if key in params:
        return params[key]
    field = spec.request.model_fields.get(key)
    return None if field is None else field.default


def _enhanced(
    spec: PipelineSpec, params: dict[str, Any], changes: dict[str, Any], max_steps: int
) -> dict[str, Any]:
    """The enhanced settings, never below the draft's own numbers; a draft that already ran as
    many steps as the enhanced setting is enhanced to twice its steps, up to
    ADAPTER_MAX_INFERENCE_STEPS (a draft at the request's default of 50 steps included)."""
    merged = dict(changes)
    for key, value in changes.items():
        draft = _draft_value(spec, params, key)
        if not _is_number(value) or not _is_number(draft):
            continue
        if draft >= value:
            merged[key] = min(2 * draft, max_steps) if key == STEPS else draft
            merged[key] = max(merged[key], draft)
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
