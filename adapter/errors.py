"""The adapter's one exception tree, and its one mapping to HTTP.

    RunnerError                 500  anything the client cannot fix
    ├── BadRequestError         400  the request cannot be served as asked
    │   ├── UnknownModelError        model or pipeline not served here
    │   └── LimitExceededError       a cost limit (pixels, images, steps) was broken
    ├── UnauthorizedError       401  missing or wrong bearer token
    ├── PayloadTooLargeError    413  request body over the byte limit
    ├── UnsupportedMediaError   415  a file we cannot decode
    ├── ServiceUnavailableError 503  try again later (with Retry-After)
    │   └── OverloadedError          capacity and wait queue full
    ├── UpstreamError           4xx/5xx  an upstream runner's own error answer, passed through
    ├── ModelUnavailableError   500  the model failed to load
    └── InferenceError          500  the pipeline failed (out of memory among others)

Every error renders as the runner contract's `{"detail": {"msg": ...}}`. Backends raise these
types; foreign errors (torch, diffusers) are translated where they are caught, never in routes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)


class RunnerError(Exception):
    """Base of every error the adapter turns into an HTTP answer."""

    status_code = 500

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg

    def headers(self) -> dict[str, str] | None:
        return None

    def body(self) -> Any:
        return error_body(self.msg)


class BadRequestError(RunnerError):
    """The request is well-formed but cannot be served as asked."""

    status_code = 400


class UnknownModelError(BadRequestError):
    """The request names a model or pipeline this adapter does not serve."""


class LimitExceededError(BadRequestError):
    """The request breaks one of the configured cost limits."""


class UnauthorizedError(RunnerError):
    """Missing, malformed or wrong bearer token."""

    status_code = 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class PayloadTooLargeError(RunnerError):
    """The request body is larger than the configured limit."""

    status_code = 413


class UnsupportedMediaError(RunnerError):
    """An uploaded file is in a format that cannot be decoded."""

    status_code = 415


class ServiceUnavailableError(RunnerError):
    """The request cannot be served now but may be later (an upstream is down)."""

    status_code = 503

    def __init__(self, msg: str, retry_after_s: int) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class OverloadedError(ServiceUnavailableError):
    """Every slot of the model is busy and its wait queue is full (or the wait timed out)."""


class UpstreamError(RunnerError):
    """An upstream runner answered with an error of the contract: its status and body stand."""

    def __init__(self, status_code: int, body: Any, msg: str) -> None:
        super().__init__(msg)
        self.status_code = status_code
        self._body = body

    def body(self) -> Any:
        return self._body


class ModelUnavailableError(RunnerError):
    """The model could not be loaded, so no request for it can be served."""


class InferenceError(RunnerError):
    """The pipeline failed while running a valid request."""


def error_body(msg: str) -> dict[str, dict[str, str]]:
    return {"detail": {"msg": msg}}


# Statuses every generate route declares; 413 and 415 only where the spec adds them.
_DECLARED_EVERYWHERE = frozenset({200, 400, 401, 422, 500})
_DECLARED_EXTRA = {"/audio-to-text": frozenset({413, 415}), "/image-to-text": frozenset({413})}


def declared_status(path: str, status: int) -> int:
    """`status` where the spec declares it for the route at `path`, else its nearest declared
    kin: 503 -> 500, 413/415 -> 400. go-livepeer decodes only declared statuses; on one that
    is not, its combined orchestrator-worker dereferences an empty result."""
    route = "/" + path.strip("/").split("/")[0]
    if status in _DECLARED_EVERYWHERE or status in _DECLARED_EXTRA.get(route, ()):
        return status
    return 400 if 400 <= status < 500 else 500


def error_response(error: RunnerError, path: str = "", declared_only: bool = False) -> JSONResponse:
    status = declared_status(path, error.status_code) if declared_only else error.status_code
    return JSONResponse(status_code=status, content=error.body(), headers=error.headers())


def _declared_only(request: Request) -> bool:
    service = getattr(request.app.state, "service", None)
    return bool(service is not None and service.settings.declared_statuses_only)


async def _handle_runner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunnerError)
    return error_response(exc, request.url.path, _declared_only(request))


async def _handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a client's fault: still the contract's JSON body, which go-livepeer decodes
    # (a plain-text 500 reaches its client as neither result nor error).
    logger.error("unexpected error serving %s", request.url.path, exc_info=exc)
    pipeline = request.url.path.strip("/").split("/")[0].replace("-", " ").capitalize()
    return error_response(InferenceError(f"{pipeline or 'Runner'} pipeline error."))


def install_error_handlers(app: FastAPI) -> None:
    # One handler on the base class covers every subclass (handlers are looked up by MRO);
    # the one on Exception catches what escaped the tree.
    app.add_exception_handler(RunnerError, _handle_runner_error)
    app.add_exception_handler(Exception, _handle_unexpected_error)
