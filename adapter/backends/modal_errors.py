"""Modal's errors as the adapter's, in one place: `translate` maps what a Modal call raised to
the error tree (contract/errors.py), and `modal_errors` raises that for a block of calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from contract.errors import (
    BadRequestError,
    ConfigError,
    InferenceError,
    ModelUnavailableError,
    PayloadTooLargeError,
    RunnerError,
    ServiceUnavailableError,
)
from modal_deploy.class_plan import ClassPlan

logger = logging.getLogger(__name__)


def translate(exc: BaseException, plan: ClassPlan, retry_after_s: int) -> RunnerError | None:
    """The adapter error for what a Modal call raised; None for what must pass (cancellation).

    Errors raised in the container arrive as the adapter's own types (the GPU class translates
    pipeline errors as the local backend does) and pass unchanged.
    """
    import grpclib.exceptions
    import modal.exception as modal_exc

    key = plan.model.key
    if isinstance(exc, RunnerError):
        return exc
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit | GeneratorExit):
        return None
    if isinstance(exc, modal_exc.FunctionTimeoutError):
        return InferenceError(f"{key} ran past its {plan.timeout} s time limit on Modal.")
    if isinstance(exc, modal_exc.RequestSizeError):
        return PayloadTooLargeError(f"The request is too large to send to Modal: {exc}")
    if isinstance(
        exc,
        modal_exc.AuthError
        | modal_exc.NotFoundError
        | modal_exc.PermissionDeniedError
        | modal_exc.InvalidError
        | ConfigError,
    ):
        # Configuration, not an outage: a 500 whose message go-livepeer logs.
        return ModelUnavailableError(f"Modal refused the call for {key}: {exc}")
    if isinstance(exc, modal_exc.InputCancellation):
        return ServiceUnavailableError(
            f"The call for {key} was cancelled on Modal (app stopped or redeployed?).",
            retry_after_s,
        )
    if isinstance(
        exc,
        modal_exc.ExecutionError
        | modal_exc.RemoteError
        | modal_exc.DeserializationError
        | modal_exc.SerializationError
        | modal_exc.OutputExpiredError,
    ):
        return InferenceError(f"{plan.model.pipeline.value.capitalize()} pipeline error on Modal.")
    transport = grpclib.exceptions.GRPCError | grpclib.exceptions.StreamTerminatedError
    if isinstance(exc, modal_exc.Error | OSError | TimeoutError | transport):
        return ServiceUnavailableError(
            f"Modal is unavailable: {str(exc) or type(exc).__name__}", retry_after_s
        )
    if isinstance(exc, Exception):
        return InferenceError(f"{plan.model.pipeline.value.capitalize()} pipeline error.")
    return None


@contextmanager
def modal_errors(plan: ClassPlan, retry_after_s: int) -> Iterator[None]:
    """Raise the adapter's error for whatever a Modal call raises in the block."""
    try:
        yield
    except BaseException as exc:
        error = translate(exc, plan, retry_after_s)
        if error is None or error is exc:
            raise
        if not isinstance(error, BadRequestError | ServiceUnavailableError):
            logger.error("%s on Modal: %r", plan.model.key, exc)
        raise error from exc
