"""What a job's end means: whether a failure may be retried, and the messages of the ends the
runner itself writes."""

from __future__ import annotations

from adapter.pipeline_errors import OUT_OF_MEMORY_MSG
from contract.errors import (
    BadRequestError,
    InferenceError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaError,
    UpstreamError,
)

# A job ended by its own request's fault: running it again would fail the same way.
_FINAL = (BadRequestError, UnauthorizedError, PayloadTooLargeError, UnsupportedMediaError)
SHUTDOWN_MSG = "The adapter stopped while the job ran."
UNSAVED_MSG = "The job ended but the store could not save its result ({}); it is not run again."
# Waits before each further try to save a job's end after a store error that may pass (see
# `may_pass`): the finished work is kept through a blip. The lease is renewed meanwhile, and a
# save that did commit before its error shows as a job no longer held (finish gives None).
SAVE_RETRY_DELAYS_S = (0.5, 2.0, 5.0)


def retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: an outage, a model that did not load, a worker that
    died, out of memory; not a bad request nor a pipeline that fails on this input."""
    if isinstance(error, _FINAL):
        return False
    if isinstance(error, UpstreamError):
        return error.status_code >= 500
    if isinstance(error, InferenceError):
        return error.msg == OUT_OF_MEMORY_MSG
    return True


def may_pass(error: BaseException) -> bool:
    """Whether a store error may not happen again a moment later: a dropped or refused
    connection, a pool with none free, a server restarting, a serialization conflict or
    deadlock (psycopg's OperationalError and its kin), a locked SQLite file. Not data the
    store refuses (a DataError, a constraint), which fails the same way every time."""
    import sqlite3

    import psycopg

    return isinstance(
        error, ConnectionError | TimeoutError | psycopg.OperationalError | sqlite3.OperationalError
    )
