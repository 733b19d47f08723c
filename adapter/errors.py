"""The adapter's one exception tree, and its one mapping to HTTP.

    RunnerError                 500  anything the client cannot fix
    ├── BadRequestError         400  the request cannot be served as asked
    │   ├── UnknownModelError        model or pipeline not served here
    │   └── LimitExceededError       a cost limit (pixels, images, steps) was broken
    ├── UnauthorizedError       401  missing or wrong bearer token
    ├── PayloadTooLargeError    413  request body over the byte limit
    ├── UnsupportedMediaError   415  a file we cannot decode
    ├── OverloadedError         503  capacity and wait queue full (with Retry-After)
    ├── BackendUnavailableError 503  Modal unreachable, or no result in time (with Retry-After)
    ├── ModelUnavailableError   500  the model failed to load
    └── InferenceError          500  the pipeline failed (out of memory among others)

Every error renders as the runner contract's `{"detail": {"msg": ...}}`. Backends raise these
types; foreign errors (torch, diffusers) are translated where they are caught, never in routes.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class RunnerError(Exception):
    """Base of every error the adapter turns into an HTTP answer."""

    status_code = 500

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg

    def headers(self) -> dict[str, str] | None:
        return None


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


class OverloadedError(RunnerError):
    """Every slot of the model is busy and its wait queue is full (or the wait timed out)."""

    status_code = 503

    def __init__(self, msg: str, retry_after_s: int) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class BackendUnavailableError(RunnerError):
    """The GPU backend (Modal) cannot serve the request now: unreachable, or no result in time."""

    status_code = 503

    def __init__(self, msg: str, retry_after_s: int) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after_s)}


class ModelUnavailableError(RunnerError):
    """The model could not be loaded, so no request for it can be served."""


class InferenceError(RunnerError):
    """The pipeline failed while running a valid request."""


def error_body(msg: str) -> dict[str, dict[str, str]]:
    return {"detail": {"msg": msg}}


def error_response(error: RunnerError) -> JSONResponse:
    return JSONResponse(
        status_code=error.status_code, content=error_body(error.msg), headers=error.headers()
    )


async def _handle_runner_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunnerError)
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    # One handler on the base class covers every subclass (handlers are looked up by MRO).
    app.add_exception_handler(RunnerError, _handle_runner_error)
