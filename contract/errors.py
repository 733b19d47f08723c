"""The one exception tree of the service: what can go wrong, with the HTTP status it stands for.

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

    ConfigError                      the model configuration is invalid (at start)
    InputError                       an argument `functions/` refuses (a ValueError: plain code
                                     raises it; the worker turns it into BadRequestError)

Every RunnerError renders as the runner contract's `{"detail": {"msg": ...}}`; `adapter.errors`
maps the tree to HTTP in one place. Plain exceptions with the status as data: the contract, the
functions and every backend raise them without importing a web framework. Foreign errors (torch,
diffusers) are translated where they are caught, never in routes.
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """The model configuration is invalid; the message names the entry and the field."""


class InputError(ValueError):
    """An argument the caller can fix, refused by `functions/` before (or while) it runs.

    The message names the field; it becomes a 400 with that message.
    """


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
