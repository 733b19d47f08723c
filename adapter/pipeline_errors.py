"""A job on a model's thread: its stop flag, and the translation of what a pipeline raises into
the error tree (the one place it is done; adapter/worker.py runs every job inside it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from contract.aimodels import ServedModel
from contract.errors import BadRequestError, InferenceError, InputError, RunnerError
from contract.pipelines import PIPELINE_SPECS
from functions.cancel import GenerationCancelled, OnStep

logger = logging.getLogger("adapter.worker")  # the worker's log, where operators look

CANCELLED_MSG = "The request was cancelled."
OUT_OF_MEMORY_MSG = "GPU out of memory."


class StopFlag:
    """What a job's `should_stop` asks: whether its caller has gone, or (with a time limit)
    the job has run longer than its limit since it reached the model's thread. Its `on_step`,
    when given, hears of each denoising step (functions.cancel.report_step)."""

    def __init__(self, time_limit_s: float | None = None, on_step: OnStep | None = None) -> None:
        self.time_limit_s = time_limit_s
        self.on_step = on_step
        self._event = threading.Event()
        self._deadline: float | None = None

    def set(self) -> None:
        self._event.set()

    def start_clock(self) -> None:
        if self.time_limit_s is not None:
            self._deadline = time.monotonic() + self.time_limit_s

    def overdue(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def __call__(self) -> bool:
        return self._event.is_set() or self.overdue()


@contextmanager
def pipeline_errors(model: ServedModel, stop: StopFlag | None = None) -> Iterator[None]:
    """Translate what a pipeline raises into the error tree: the one place it is done.

    The tree's own errors pass as they are; an InputError (an argument `functions/` refuses)
    is a 400; torch's out-of-memory and a cancelled generation have their own messages (a
    generation stopped by `stop`'s time limit says so); any other exception, a ValueError from
    deep inside a library included, is the pipeline's 500 with a log line: the client cannot
    fix it.
    """
    try:
        yield
    except RunnerError:
        raise
    except InputError as exc:
        msg = str(exc)
        raise BadRequestError(msg if msg.endswith(".") else f"{msg}.") from exc
    except Exception as exc:
        import torch

        if isinstance(exc, GenerationCancelled):
            if stop is not None and stop.overdue():
                logger.error("%s ran past its %g s time limit", model.key, stop.time_limit_s)
                raise InferenceError(
                    f"{model.key} ran past its {stop.time_limit_s:g} s time limit."
                ) from exc
            raise InferenceError(CANCELLED_MSG) from exc
        if isinstance(exc, torch.OutOfMemoryError):
            torch.cuda.empty_cache()
            logger.error("%s ran out of GPU memory: %s", model.key, exc)
            raise InferenceError(OUT_OF_MEMORY_MSG) from exc
        logger.exception("%s failed", model.key)
        raise InferenceError(PIPELINE_SPECS[model.pipeline].failure_message) from exc
