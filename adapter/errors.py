"""The one mapping of the error tree (contract.errors) to HTTP responses.

go-livepeer's generated client decodes only the statuses the runner spec declares for a route
(200, 400, 401, 422, 500, and 413/415 where declared); on any other its worker returns no result
and no error, which its combined orchestrator dereferences. So on the runner's routes (the
spec's POST operations) every error answers, by default, the nearest declared status: a 503
(overload, an unreachable backend) becomes a 500 and an undeclared 413 or 415 a 400, each with
the contract's body and its headers (`Retry-After` stays). `declared_only=False` keeps 503 and
413 for a front end that understands them; other paths (new doors with contracts of their own)
always answer the tree's own status.

The jobs door (`/v1/jobs`) answers every error, its own and the framework's, with its own body
`{"error": {"message", "type"}}` (adapter.jobs.errors) and the tree's status.

Every body on those routes has the spec's shape: `{"detail": {"msg": ...}}` (`HTTPError`), and for
422 `{"detail": [{"loc", "msg", "type", ...}]}` (`HTTPValidationError`), bodies that cannot be
decoded at all included. Error bodies are written in ASCII JSON with no NaN, so what a client
sent (a lone surrogate, a NaN) can be echoed without breaking the answer.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from adapter.jobs.errors import (
    door_error_body,
    door_error_response,
    is_jobs_path,
    validation_message,
)
from contract.errors import (
    BadRequestError,
    MalformedBodyError,
    NotFoundError,
    RunnerError,
    ServiceUnavailableError,
    UnauthorizedError,
    UpstreamError,
    error_body,
)
from contract.pipelines import PIPELINE_SPECS, Pipeline

logger = logging.getLogger(__name__)

# Statuses every runner route declares; PipelineSpec.extra_error_statuses adds its own (413, 415).
DECLARED_EVERYWHERE = frozenset({200, 400, 401, 422, 500})

# The runner routes by path; each also answers with a trailing slash.
_ROUTES = {f"/{pipeline.value}": pipeline for pipeline in PIPELINE_SPECS}


def declared_statuses(pipeline: Pipeline) -> frozenset[int]:
    """The statuses the runner spec declares for the pipeline's route."""
    return DECLARED_EVERYWHERE | frozenset(PIPELINE_SPECS[pipeline].extra_error_statuses)


def route_error_statuses(pipeline: Pipeline, declared_only: bool) -> tuple[int, ...]:
    """The error statuses (422 aside) the pipeline's route can answer, for its OpenAPI entry."""
    extra = PIPELINE_SPECS[pipeline].extra_error_statuses
    statuses = (400, 401, *extra, 500) if declared_only else (400, 401, 413, 415, 500, 503)
    return tuple(sorted(set(statuses)))


def route_path(scope: Scope) -> str:
    """The request's path as the router sees it (without uvicorn's --root-path)."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path


def jobs_door(scope: Scope) -> bool:
    return scope.get("type") == "http" and is_jobs_path(route_path(scope))


def runner_operation(scope: Scope) -> Pipeline | None:
    """The pipeline whose runner route the request is for (POST to its path), else None."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    return _ROUTES.get(route_path(scope).rstrip("/"))


def nearest_declared(status: int, declared: frozenset[int]) -> int:
    """`status` if declared, else its nearest declared kin: a 4xx is a 400, anything else 500."""
    if status in declared:
        return status
    return 400 if 400 <= status < 500 else 500


class ContractJSONResponse(JSONResponse):
    """JSON in ASCII, with NaN and infinities as strings: an error body may echo what the client
    sent, and a lone surrogate (valid in a JSON string, not in UTF-8) or a NaN must not turn the
    answer into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            _finite(content), ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _is_contract_body(body: Any, status: int) -> bool:
    if not isinstance(body, dict):
        return False
    detail = body.get("detail")
    if status == 422:
        return isinstance(detail, list)
    return isinstance(detail, dict) and isinstance(detail.get("msg"), str)


def _body(error: RunnerError) -> Any:
    if isinstance(error, UpstreamError):
        if _is_contract_body(error.body, error.status_code):
            return error.body
        detail = error.body.get("detail") if isinstance(error.body, dict) else None
        if isinstance(detail, str) and detail:  # an older runner's string detail
            return error_body(detail)
    return error_body(error.msg)


def _headers(error: RunnerError) -> dict[str, str] | None:
    if isinstance(error, UnauthorizedError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, ServiceUnavailableError):
        return {"Retry-After": str(error.retry_after_s)}
    return None


def error_response(error: RunnerError, status_code: int | None = None) -> Response:
    """The contract's body and headers for `error`, with its own status unless one is given."""
    status = error.status_code if status_code is None else status_code
    return ContractJSONResponse(_body(error), status_code=status, headers=_headers(error))


@dataclass(frozen=True)
class ErrorMapping:
    """How errors answer: `declared_only` keeps go-livepeer's routes on the spec's statuses."""

    declared_only: bool

    def status(self, status: int, scope: Scope) -> int:
        pipeline = runner_operation(scope)
        if pipeline is None or not self.declared_only:
            return status
        return nearest_declared(status, declared_statuses(pipeline))

    def response(self, error: RunnerError, scope: Scope) -> Response:
        if jobs_door(scope):
            return door_error_response(error)
        return error_response(error, self.status(error.status_code, scope))

    async def handle_runner_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RunnerError)
        return self.response(exc, request.scope)

    async def handle_http_exception(self, request: Request, exc: Exception) -> Response:
        """Starlette's and FastAPI's own refusals. On a runner route they are bodies that could
        not be read (FastAPI's 400 "There was an error parsing the body", Starlette's "Invalid
        multipart data."): the contract's shape, not a string `detail`."""
        assert isinstance(exc, HTTPException)
        if jobs_door(request.scope):
            return self._door_http_exception(request, exc)
        if runner_operation(request.scope) is None:
            return await http_exception_handler(request, exc)
        if isinstance(exc.__cause__, RunnerError):
            # Raised while FastAPI read the body (the body limit); it wraps any error in a 400.
            return self.response(exc.__cause__, request.scope)
        if exc.status_code == 400:
            return self.response(MalformedBodyError(_unreadable_body_msg(exc)), request.scope)
        return ContractJSONResponse(
            error_body(str(exc.detail)),
            status_code=self.status(exc.status_code, request.scope),
            headers=exc.headers,
        )

    def _door_http_exception(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.__cause__, RunnerError):
            return self.response(exc.__cause__, request.scope)
        if exc.status_code == 400:
            return self.response(MalformedBodyError(_unreadable_body_msg(exc)), request.scope)
        if exc.status_code == 404:
            return self.response(NotFoundError(f"No route {request.url.path}."), request.scope)
        body = door_error_body(str(exc.detail), "http_error")
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def handle_validation_error(self, request: Request, exc: Exception) -> Response:
        """422 as the spec's HTTPValidationError (FastAPI's own list), safe to render; on the
        jobs door, a 400 naming the fields."""
        assert isinstance(exc, RequestValidationError)
        if jobs_door(request.scope):
            error = BadRequestError(validation_message(list(exc.errors())))
            return self.response(error, request.scope)
        encoders: dict[Any, Callable[[Any], Any]] = {
            UploadFile: _describe_upload,
            bytes: _describe_bytes,
        }
        detail = jsonable_encoder(exc.errors(), custom_encoder=encoders)
        return ContractJSONResponse({"detail": detail}, status_code=422)

    async def handle_unexpected_error(self, request: Request, exc: Exception) -> Response:
        # A bug, not a client's fault: still the contract's JSON body, which go-livepeer decodes
        # (a plain-text 500 reaches its client as neither result nor error).
        logger.error("unexpected error serving %s", request.url.path, exc_info=exc)
        if jobs_door(request.scope):
            return JSONResponse(door_error_body("Internal server error.", "server_error"), 500)
        pipeline = runner_operation(request.scope)
        msg = PIPELINE_SPECS[pipeline].failure_message if pipeline else "Internal server error."
        return ContractJSONResponse(error_body(msg), status_code=500)


def _describe_upload(upload: UploadFile) -> str:
    # FastAPI would echo the file object's internals (its temporary file's state).
    return f"<file {upload.filename!r}, {upload.size} bytes>"


def _describe_bytes(data: bytes) -> str:
    # A body FastAPI did not parse (not JSON): it would decode it strictly, failing on non-UTF-8.
    text = data[:_ECHOED_BYTES].decode("utf-8", errors="replace")
    return text if len(data) <= _ECHOED_BYTES else f"{text}... ({len(data)} bytes)"


_ECHOED_BYTES = 1000


# What FastAPI's "There was an error parsing the body" was caused by, in the client's terms.
_UNREADABLE_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (UnicodeDecodeError, "the JSON body is not UTF-8 text"),
    (RecursionError, "the JSON body is nested too deeply"),
    (ValueError, "the JSON body holds a value that cannot be read (a number too long?)"),
)


def _unreadable_body_msg(exc: HTTPException) -> str:
    detail = str(exc.detail).rstrip(".")
    for kind, why in _UNREADABLE_CAUSES:
        if isinstance(exc.__cause__, kind):
            return f"{detail}: {why}."
    return f"{detail}."


def install_error_handlers(app: FastAPI, *, declared_only: bool) -> ErrorMapping:
    """Answer every error of `app` through one mapping, returned for the middleware that
    answer before the app does (the body limit)."""
    mapping = ErrorMapping(declared_only=declared_only)
    # Handlers are looked up by MRO: the base class covers every subclass; the one on Exception
    # catches what escaped the tree.
    app.add_exception_handler(RunnerError, mapping.handle_runner_error)
    app.add_exception_handler(HTTPException, mapping.handle_http_exception)
    app.add_exception_handler(RequestValidationError, mapping.handle_validation_error)
    app.add_exception_handler(Exception, mapping.handle_unexpected_error)
    return mapping
