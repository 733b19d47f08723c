"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with OpenAI's
status codes; and the one translation of the runner's error tree (contract.errors) into them.

    runner error                      OpenAI status  type                   code
    UnknownModelError (model named)   404            invalid_request_error  model_not_found
    UnknownModelError (none named)    400            invalid_request_error  model_not_found
    BadRequestError, LimitExceeded    400            invalid_request_error
    UnauthorizedError                 401            invalid_request_error  invalid_api_key
    PayloadTooLargeError              413            invalid_request_error  request_too_large
    UnsupportedMediaError             400            invalid_request_error  invalid_file_format
    OverloadedError (capacity full)   429            requests               rate_limit_exceeded
    ServiceUnavailableError (other)   503            server_error           service_unavailable
    UpstreamError                     its own        by its status
    everything else                   500            server_error

429 and 503 carry `Retry-After`, which the official clients honour when they retry.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from contract.errors import (
    BadRequestError,
    OverloadedError,
    PayloadTooLargeError,
    RunnerError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedMediaError,
    UpstreamError,
)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
SERVER_ERROR_MESSAGE = "The server had an error while processing your request."


class OpenAIError(Exception):
    """An answer in OpenAI's error shape; raised by the translation, rendered by the door."""

    def __init__(
        self,
        status_code: int,
        message: str,
        type: str = INVALID_REQUEST,  # OpenAI's own field name
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str] | None:
        if self.status_code == 401:
            return {"WWW-Authenticate": "Bearer"}
        if self.retry_after_s is not None:
            return {"Retry-After": str(self.retry_after_s)}
        return None


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 naming the parameter at fault."""
    return OpenAIError(400, message, INVALID_REQUEST, param, code)


def unauthorized() -> OpenAIError:
    return OpenAIError(
        401,
        "Incorrect API key provided. Send one of the service's tokens as `Authorization: "
        "Bearer <token>`.",
        INVALID_REQUEST,
        None,
        "invalid_api_key",
    )


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model `{model}` does not exist or is not served here.",
        INVALID_REQUEST,
        "model",
        "model_not_found",
    )


def from_runner_error(error: RunnerError, model_named: bool = True) -> OpenAIError:
    """The OpenAI answer for an error of the runner's tree (see the table above)."""
    if isinstance(error, UnknownModelError):
        status = 404 if model_named else 400
        return OpenAIError(status, error.msg, INVALID_REQUEST, "model", "model_not_found")
    if isinstance(error, OverloadedError):
        return OpenAIError(
            429, error.msg, "requests", None, "rate_limit_exceeded", error.retry_after_s
        )
    if isinstance(error, ServiceUnavailableError):
        return OpenAIError(
            503, error.msg, SERVER_ERROR, None, "service_unavailable", error.retry_after_s
        )
    if isinstance(error, UnsupportedMediaError):
        return OpenAIError(400, error.msg, INVALID_REQUEST, "file", "invalid_file_format")
    if isinstance(error, PayloadTooLargeError):
        return OpenAIError(413, error.msg, INVALID_REQUEST, None, "request_too_large")
    if isinstance(error, UnauthorizedError):
        return unauthorized()
    if isinstance(error, BadRequestError):
        return OpenAIError(400, error.msg, INVALID_REQUEST)
    if isinstance(error, UpstreamError):
        kind = INVALID_REQUEST if 400 <= error.status_code < 500 else SERVER_ERROR
        return OpenAIError(error.status_code, error.msg, kind)
    return OpenAIError(error.status_code, error.msg, SERVER_ERROR)


def from_validation_error(
    error: ValidationError, prefix: tuple[str | int, ...] = ()
) -> OpenAIError:
    """A 400 for a body that does not parse, naming the first field at fault as OpenAI does
    (`messages[0].role`)."""
    first = error.errors()[0]
    return invalid_at((*prefix, *first["loc"]), first["msg"])


def invalid_at(loc: tuple[str | int, ...], msg: str) -> OpenAIError:
    param = ""
    for part in loc:
        if isinstance(part, int):
            param += f"[{part}]"
        else:
            param += f".{part}" if param else str(part)
    message = f"Invalid value for '{param}': {msg}." if param else f"Invalid request: {msg}."
    return invalid(message, param or None)
