"""The jobs door's error body, `{"error": {"message", "type"}}`, with the tree's own status.

adapter.errors (the one mapping of the error tree to HTTP) answers every request to the door's
paths with `door_error_response`; this module says what the body is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from contract.errors import (
    BadRequestError,
    ConflictError,
    LimitExceededError,
    MalformedBodyError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
    RunnerError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedMediaError,
)

JOBS_PREFIX = "/v1/jobs"

# The most specific class first: each error's `type` is that of its first match.
_TYPES: tuple[tuple[type[RunnerError], str], ...] = (
    (MalformedBodyError, "malformed_body"),
    (UnknownModelError, "unknown_model"),
    (LimitExceededError, "limit_exceeded"),
    (BadRequestError, "invalid_request"),
    (UnauthorizedError, "unauthorized"),
    (NotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (PayloadTooLargeError, "payload_too_large"),
    (UnsupportedMediaError, "unsupported_media_type"),
    (QueueFullError, "queue_full"),
    (ServiceUnavailableError, "service_unavailable"),
)


class ErrorDetail(BaseModel):
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the jobs door."""

    error: ErrorDetail


def is_jobs_path(path: str) -> bool:
    return path == JOBS_PREFIX or path.startswith(JOBS_PREFIX + "/")


def error_type(error: RunnerError) -> str:
    for kind, name in _TYPES:
        if isinstance(error, kind):
            return name
    return "server_error"


def door_error_body(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_}}


def door_error_response(error: RunnerError, status_code: int | None = None) -> Response:
    headers: dict[str, str] = {}
    if isinstance(error, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, QueueFullError | ServiceUnavailableError):
        headers["Retry-After"] = str(error.retry_after_s)
    status = error.status_code if status_code is None else status_code
    if not 400 <= status < 600:
        status = 500  # an upstream's odd status is still an error here
    return JSONResponse(
        door_error_body(error.msg, error_type(error)), status_code=status, headers=headers
    )


def validation_message(errors: list[Any], prefix: str = "") -> str:
    """One sentence naming each field at fault, from pydantic's (or FastAPI's) error list."""
    parts = []
    for item in errors[:5]:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{prefix}{loc}: {item.get('msg', 'invalid')}" if loc else item.get("msg"))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid " + "; ".join(str(p) for p in parts) + more + "."


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that can answer these error statuses."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in statuses}
