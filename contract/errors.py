"""The one exception tree of the service: what can go wrong, with the HTTP status it stands for.

    RunnerError                   500  anything the client cannot fix
    ├── BadRequestError           400  the request cannot be served as asked
    │   ├── MalformedBodyError         the body cannot be decoded (not UTF-8, bad multipart)
    │   ├── UnknownModelError          model or pipeline not served here
    │   └── LimitExceededError         a cost limit (pixels, images, steps) was broken
    ├── UnauthorizedError         401  missing or wrong bearer token
    ├── PayloadTooLargeError      413  request body over the byte limit
    ├── UnsupportedMediaError     415  a file we cannot decode
    ├── ServiceUnavailableError   503  try again later (with Retry-After)
    │   └── OverloadedError            capacity and wait queue full: "insufficient capacity"
    ├── UpstreamError             4xx/5xx  an upstream runner's own error answer, passed through
    ├── ModelUnavailableError     500  the model failed to load
    ├── InferenceError            500  the pipeline failed (out of memory among others)
    └── ClientDisconnectedError   500  the client left before the answer (no one reads it)

    ConfigError                        the model configuration is invalid (at start)
    OptimizationFlagError              an entry's optimization flag is unknown or does not apply
                                       (a ValueError; reported as a ConfigError naming the entry)
    UnitsError                         go-livepeer's unit rule cannot count a request (a
                                       ValueError; metrics and the pricing tool report it)
    InputError                         an argument `functions/` refuses (a ValueError: plain code
                                       raises it; the worker turns it into BadRequestError)

`status_code` is the status the error stands for. The runner spec declares fewer on its routes
(no 503 anywhere, 413 and 415 on two): `adapter.errors`, the one mapping of this tree to HTTP,
answers go-livepeer's routes with the nearest declared status and the contract's body
`{"detail": {"msg": ...}}`. Plain exceptions with the status as data: the contract, the functions
and every backend raise them without importing a web framework, and they pickle (Modal sends
them back from its containers). Foreign errors (torch, diffusers, httpx, Modal) are translated
where they are caught, never in routes.
"""

from __future__ import annotations

from typing import Any

# The words go-livepeer's gateway looks for in an orchestrator's error (`isNoCapacityError` in
# server/ai_process.go): such an error is retried on another orchestrator without suspending this
# one. Every refusal for load says them.
INSUFFICIENT_CAPACITY = "insufficient capacity"


class ConfigError(Exception):
    """The model configuration is invalid; the message names the entry and the field."""


class OptimizationFlagError(ValueError):
    """A flag is unknown, has a bad value, or does not apply; `flag` names it."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.flag, str(self))


class UnitsError(ValueError):
    """go-livepeer would refuse the request, or a fact its unit rule needs is missing."""


class InputError(ValueError):
    """An argument the caller can fix, refused by `functions/` before (or while) it runs.

    The message names the field; it becomes a 400 with that message.
    """


class RunnerError(Exception):
    """Base of every error the service answers a request with."""

    status_code = 500

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


class BadRequestError(RunnerError):
    """The request is well-formed but cannot be served as asked."""

    status_code = 400


class MalformedBodyError(BadRequestError):
    """The request body cannot be decoded at all (not UTF-8, malformed multipart, no boundary)."""


class UnknownModelError(BadRequestError):
    """The request names a model or pipeline this adapter does not serve."""


class LimitExceededError(BadRequestError):
    """The request breaks one of the configured cost limits."""


class UnauthorizedError(RunnerError):
    """Missing, malformed or wrong bearer token (answered with `WWW-Authenticate: Bearer`)."""

    status_code = 401


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

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.msg, self.retry_after_s)


class OverloadedError(ServiceUnavailableError):
    """Every slot of the model is busy and its wait queue is full (or the wait timed out)."""


class UpstreamError(RunnerError):
    """An upstream runner answered with an error of the contract: its status and body stand."""

    def __init__(self, status_code: int, body: Any, msg: str) -> None:
        super().__init__(msg)
        self.status_code = status_code
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.status_code, self.body, self.msg)


class ModelUnavailableError(RunnerError):
    """The model could not be loaded, so no request for it can be served."""


class InferenceError(RunnerError):
    """The pipeline failed while running a valid request."""


class ClientDisconnectedError(RunnerError):
    """The client went away before the answer was ready; no one reads this answer."""


class NotFoundError(RunnerError):
    """A job (or one of its output files) that does not exist, or is not the caller's."""

    status_code = 404


class ConflictError(RunnerError):
    """The job is not in a state that allows it (cancel of an ended job, enhance of a failed
    one)."""

    status_code = 409


class QueueFullError(RunnerError):
    """The jobs queue (or the caller's share of it) is full: try again after `retry_after_s`."""

    status_code = 429

    def __init__(self, msg: str, retry_after_s: int) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.msg, self.retry_after_s)


def error_body(msg: str) -> dict[str, dict[str, str]]:
    """The runner contract's error body (`HTTPError` in its spec)."""
    return {"detail": {"msg": msg}}
