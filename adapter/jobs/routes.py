"""The `/v1/jobs` routes: submit (JSON or multipart), list, read, follow (SSE), download, cancel,
enhance. Bearer auth with the service's tokens; a token sees only the jobs it submitted.

Registered on the main app before the OpenAI door's mount at /v1, so these paths are ours.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from adapter.jobs.door import JobsDoor, JobSubmission, owner_of
from adapter.jobs.errors import (
    JOBS_PREFIX,
    door_error_body,
    error_responses,
    validation_message,
)
from adapter.jobs.events import job_events
from adapter.jobs.files import output_key
from adapter.jobs.model import JobQuery, JobRecord, JobStatus
from adapter.jobs.views import Job, JobList, job_view
from adapter.web.auth import token_accepted
from contract.errors import (
    BadRequestError,
    MalformedBodyError,
    NotFoundError,
    RunnerError,
    UnauthorizedError,
    UnsupportedMediaError,
)
from contract.schemas import Upload

_bearer = HTTPBearer(auto_error=False)
UNAUTHORIZED_MSG = "Invalid bearer token."
# Text fields of a multipart submit that are the job's own (the others are params).
_FORM_FIELDS = ("pipeline", "model_id", "webhook", "params", "metadata")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _door(request: Request) -> JobsDoor:
    door: JobsDoor = request.app.state.jobs
    return door


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The owner hash of the caller's token, after checking it (401 otherwise)."""
    door = _door(request)
    given = credentials.credentials if credentials is not None else None
    if not token_accepted(given, door.service.tokens):
        raise UnauthorizedError(UNAUTHORIZED_MSG)
    return owner_of(given, door.auth_on)


Owner = Annotated[str, Depends(caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Submitting again with the same key returns the first job, not a new one.",
    ),
]


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


async def _view(request: Request, job: JobRecord) -> Job:
    return job_view(*await _door(request).placed(job), _root(request))


def _json(job: Job, status_code: int = 200, replayed: bool = False) -> Response:
    headers = {"Location": job.urls.self}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body = job.model_dump_json()
    return Response(body, status_code, headers=headers, media_type="application/json")


def _json_field(form_value: Any, name: str) -> dict[str, Any]:
    if not isinstance(form_value, str):
        raise BadRequestError(f"The {name} field must be JSON text, not a file.")
    try:
        value = json.loads(form_value) if form_value.strip() else {}
    except ValueError as exc:
        raise BadRequestError(f"The {name} field is not valid JSON: {exc}.") from exc
    if not isinstance(value, dict):
        raise BadRequestError(f"The {name} field must be a JSON object.")
    return value


async def _read_form(request: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    fields: dict[str, Any] = {}
    params: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    async with request.form() as form:  # closes the spooled files of its uploads
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                await value.seek(0)
                uploads[key] = Upload(await value.read(), value.filename, value.content_type)
            elif key in ("params", "metadata"):
                fields[key] = _json_field(value, key)
            elif key in _FORM_FIELDS:
                fields[key] = value
            else:
                params[key] = value  # a param as a field of its own (pydantic parses "7.5")
    fields["params"] = {**fields.get("params", {}), **params}
    return fields, uploads


async def read_submission(request: Request) -> tuple[JobSubmission, dict[str, Upload]]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields, uploads = await _read_form(request)
    elif media_type in ("application/json", ""):
        raw = await request.body()
        try:
            fields = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MalformedBodyError(f"The body is not valid JSON: {exc}.") from exc
        if not isinstance(fields, dict):
            raise BadRequestError("The body must be a JSON object.")
        uploads = {}
    else:
        raise UnsupportedMediaError(
            f"Submit a job as application/json or multipart/form-data, not {media_type}."
        )
    try:
        return JobSubmission.model_validate(fields), uploads
    except ValidationError as exc:
        raise BadRequestError(validation_message(exc.errors())) from exc


_SUBMIT_SCHEMA = JobSubmission.model_json_schema()
_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _SUBMIT_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "The same fields (params and metadata as JSON text, or each "
                    "param as a field), and the pipeline's file (image, audio).",
                    "properties": {
                        "pipeline": {"type": "string"},
                        "model_id": {"type": "string"},
                        "params": {"type": "string", "contentMediaType": "application/json"},
                        "webhook": {"type": "string"},
                        "metadata": {"type": "string", "contentMediaType": "application/json"},
                        "image": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "audio": {"type": "string", "contentMediaType": "application/octet-stream"},
                    },
                    "required": ["pipeline"],
                }
            },
        },
    }
}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive of a one-range `Range` header; None for a header we do not serve
    (several ranges, another unit): the whole file. Raises for a range past the end (416)."""
    found = _RANGE.match(header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError
    return start, end


async def _download(request: Request, owner: str, job_id: str, name: str | None) -> Response:
    door = _door(request)
    file = await door.output(owner, job_id, name)
    key = output_key(job_id, file.name)
    link = door.outputs.presigned_url(key, door.settings.jobs.presigned_url_s)
    if link is not None:
        return RedirectResponse(link, status_code=302)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{file.name}"',
        "Cache-Control": "private, max-age=3600",
    }
    wanted = request.headers.get("range")
    if wanted:
        try:
            span = _parse_range(wanted, file.size)
        except ValueError:
            headers["Content-Range"] = f"bytes */{file.size}"
            message = f"The range {wanted!r} is past the end of {file.name} ({file.size} bytes)."
            body = door_error_body(message, "range_not_satisfiable")
            return JSONResponse(body, status_code=416, headers=headers)
        if span is not None:
            start, end = span
            data = await door.outputs.read_range(key, start, end)
            headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
            return Response(data, status_code=206, media_type=file.content_type, headers=headers)
    try:
        data = await door.outputs.get(key)
    except KeyError:
        missing = f"The output {file.name} of job {job_id} is missing from the store."
        raise RunnerError(missing) from None
    return Response(data, media_type=file.content_type, headers=headers)


def build_router() -> APIRouter:
    router = APIRouter(prefix=JOBS_PREFIX, tags=["jobs"])
    common = error_responses(400, 401, 404)

    @router.post(
        "",
        status_code=202,
        response_model=Job,
        responses=error_responses(400, 401, 413, 415, 429),
        openapi_extra=_SUBMIT_BODY,
        summary="Submit a job",
        description="Queue a generation: any served pipeline, with its runner route's request "
        "as `params`. Answers 202 with the job; 429 with Retry-After when the queue is full.",
    )
    async def submit_job(request: Request, owner: Owner, key: IdempotencyKey = None) -> Response:
        submission, uploads = await read_submission(request)
        job, created = await _door(request).submit(owner, submission, uploads, key)
        return _json(await _view(request, job), 202, replayed=not created)

    @router.get("", response_model=JobList, responses=common, summary="List jobs")
    async def list_jobs(
        request: Request,
        owner: Owner,
        status: JobStatus | None = None,
        pipeline: str | None = None,
        model_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> JobList:
        """The caller's jobs, newest first; `next_cursor` fetches the next page."""
        query = JobQuery(
            status=status,
            pipeline=pipeline,
            model_id=model_id,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
        page = await _door(request).page(owner, query)
        views = [job_view(job, page.positions.get(job.id), _root(request)) for job in page.jobs]
        return JobList(data=views, next_cursor=page.next_cursor)

    @router.get("/{job_id}", response_model=Job, responses=common, summary="Get a job")
    async def get_job(request: Request, owner: Owner, job_id: str) -> Response:
        return _json(await _view(request, await _door(request).owned(owner, job_id)))

    @router.get(
        "/{job_id}/events",
        responses={**common, 200: {"content": {"text/event-stream": {}}}},
        summary="Follow a job",
        description="Server-sent events: `event: job` with the job's JSON each time it changes; "
        "the stream ends when the job has ended.",
    )
    async def job_events_route(request: Request, owner: Owner, job_id: str) -> StreamingResponse:
        door = _door(request)
        await door.owned(owner, job_id)

        async def load() -> Job | None:
            job = await door.store.get(job_id)
            return None if job is None else await _view(request, job)

        jobs = door.settings.jobs
        stream = job_events(load, jobs.poll_interval_s, jobs.events_max_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    downloads = {**error_responses(400, 401, 404, 409, 416), 206: {"description": "A range"}}

    @router.get("/{job_id}/result", responses=downloads, summary="Download a job's result")
    async def job_result(request: Request, owner: Owner, job_id: str) -> Response:
        """The job's first output file (its only one, but for several images); Range works."""
        return await _download(request, owner, job_id, None)

    @router.get("/{job_id}/outputs/{name}", responses=downloads, summary="Download one output")
    async def job_output(request: Request, owner: Owner, job_id: str, name: str) -> Response:
        return await _download(request, owner, job_id, name)

    @router.post(
        "/{job_id}/cancel",
        response_model=Job,
        responses=error_responses(401, 404, 409),
        summary="Cancel a job",
        description="A queued job never starts; a running one stops between steps. 409 when "
        "the job has already ended.",
    )
    async def cancel_job(request: Request, owner: Owner, job_id: str) -> Response:
        return _json(await _view(request, await _door(request).cancel(owner, job_id)))

    @router.post(
        "/{job_id}/enhance",
        status_code=202,
        response_model=Job,
        responses=error_responses(400, 401, 404, 409, 429),
        summary="Enhance a job",
        description="A new job (its parent_id this one) with the same prompt, seed and inputs "
        "and the model's enhanced settings (more steps). 409 unless this job succeeded.",
    )
    async def enhance_job(
        request: Request, owner: Owner, job_id: str, key: IdempotencyKey = None
    ) -> Response:
        job, created = await _door(request).enhance(owner, job_id, key)
        return _json(await _view(request, job), 202, replayed=not created)

    @router.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def no_such_route(request: Request) -> Response:
        # Without it, the OpenAI door mounted at /v1 would answer in its own words.
        raise NotFoundError(f"No route {request.method} {request.url.path}.")

    return router
