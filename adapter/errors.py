"""The one mapping of the error tree (contract.errors) to HTTP responses.

The tree itself lives in contract.errors (plain exceptions, the status as data); the errors that
escape it (a bug) still get the contract's JSON body.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from contract.errors import InferenceError, RunnerError

logger = logging.getLogger(__name__)


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
