"""The local in-process backend: runs `functions/` pipelines on this machine's GPU or CPU.

Each model gets one worker thread. Loading and inference run there, never on the event loop,
so `/health` and other requests answer while a model loads or generates. One thread per model
because a diffusers pipeline is not safe to call from two threads at once (its scheduler keeps
per-call state); requests admitted by the capacity limiter wait their turn on it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from adapter.backends.base import ModelState
from adapter.pipelines import PIPELINES
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import (
    BadRequestError,
    ConfigError,
    InferenceError,
    ModelUnavailableError,
    RunnerError,
)
from contract.pipelines import Pipeline
from contract.schemas import RequestModel

logger = logging.getLogger(__name__)


class _Cancelled(Exception):
    """The request was abandoned while its job ran."""


@dataclass
class _ModelSlot:
    model: ServedModel
    executor: ThreadPoolExecutor
    state: ModelState = ModelState.COLD
    error: str = ""
    handle: Any = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)


@contextmanager
def _pipeline_errors(model: ServedModel) -> Iterator[None]:
    """Translate what a pipeline raises into the adapter's error tree, as the runner maps it."""
    import torch

    try:
        yield
    except RunnerError:
        raise
    except ValueError as exc:
        raise BadRequestError(f"{exc}.") from exc
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        raise InferenceError("GPU out of memory.") from exc
    except Exception as exc:
        from functions.cancel import GenerationCancelled

        if isinstance(exc, GenerationCancelled):
            raise _Cancelled() from exc
        logger.exception("%s failed", model.key)
        if "out of memory" in str(exc).lower():
            raise InferenceError("Out of memory.") from exc
        raise InferenceError(PIPELINES[model.pipeline].failure_message) from exc


class LocalBackend:
    def __init__(self, settings: Settings, models: list[ServedModel]) -> None:
        self.settings = settings
        self._slots = {
            model.key: _ModelSlot(
                model=model,
                executor=ThreadPoolExecutor(1, thread_name_prefix=f"model-{model.model_id}"),
            )
            for model in models
        }
        self._warm_task: asyncio.Task[None] | None = None
        self._cold_loads: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------

    def check(self, models: list[ServedModel]) -> None:
        for model in models:
            if model.pipeline not in PIPELINES:
                implemented = ", ".join(sorted(p.value for p in PIPELINES))
                raise ConfigError(
                    f"{model.key}: field 'pipeline': {model.pipeline.value!r} has no local "
                    f"implementation yet (implemented: {implemented})"
                )

    async def start(self) -> None:
        warm = [slot for slot in self._slots.values() if slot.model.warm]
        for slot in warm:
            slot.state = ModelState.LOADING
        self._warm_task = asyncio.create_task(self._load_in_turn(warm))

    async def close(self) -> None:
        if self._warm_task is not None:
            self._warm_task.cancel()
        for slot in self._slots.values():
            slot.executor.shutdown(wait=False, cancel_futures=True)

    def state(self, model: ServedModel) -> ModelState:
        return self._slots[model.key].state

    # --- loading -----------------------------------------------------------------------

    async def _load_in_turn(self, slots: list[_ModelSlot]) -> None:
        # One after another: loading several models at once only multiplies peak memory.
        for slot in slots:
            await self._load(slot)

    async def _load(self, slot: _ModelSlot) -> None:
        slot.state = ModelState.LOADING
        loop = asyncio.get_running_loop()
        try:
            slot.handle = await loop.run_in_executor(slot.executor, self._load_sync, slot.model)
        except Exception as exc:
            logger.exception("loading %s failed", slot.model.key)
            slot.error = str(exc) or type(exc).__name__
            slot.state = ModelState.FAILED
        else:
            logger.info("%s loaded", slot.model.key)
            slot.state = ModelState.READY
        slot.settled.set()

    def _load_sync(self, model: ServedModel) -> Any:
        from functions.device import pick_device, pick_dtype
        from functions.loading import resolve_model_path

        if model.runner.demo and model.runner.model_path:
            _ensure_demo_model(model.pipeline, Path(model.runner.model_path))
        folder = resolve_model_path(
            model.model_id, model.runner.model_path, self.settings.model_dir
        )
        device = pick_device(self.settings.device)
        dtype = pick_dtype(device, model.runner.torch_dtype)
        glue = PIPELINES[model.pipeline]
        handle = glue.load(model, folder, device, dtype, self.settings)
        glue.optimize(handle, model, self.settings)
        return handle

    async def _ready_slot(self, model: ServedModel) -> _ModelSlot:
        slot = self._slots[model.key]
        if slot.state is ModelState.FAILED and not model.warm:
            # A cold model's failed load (weights not there yet, a transient out-of-memory) is
            # tried again by its next request; a warm one stays ERROR for the operator to see.
            slot.state, slot.settled = ModelState.COLD, asyncio.Event()
        if slot.state is ModelState.COLD:
            # A cold model loads on its first request; later ones wait for the same load.
            slot.state = ModelState.LOADING
            self._cold_loads.add(task := asyncio.create_task(self._load(slot)))
            task.add_done_callback(self._cold_loads.discard)
        try:
            await asyncio.wait_for(slot.settled.wait(), self.settings.model_load_wait_s)
        except TimeoutError:
            raise ModelUnavailableError(
                f"Model {model.model_id} is still loading after "
                f"{self.settings.model_load_wait_s:g} s (model_load_wait_s); retry later."
            ) from None
        if slot.state is ModelState.FAILED:
            raise ModelUnavailableError(f"Model {model.model_id} failed to load: {slot.error}")
        return slot

    # --- serving -----------------------------------------------------------------------

    async def run(self, model: ServedModel, request: RequestModel) -> BaseModel:
        slot = await self._ready_slot(model)
        stop = threading.Event()
        job = PIPELINES[model.pipeline].run

        def run_sync() -> BaseModel:
            with _pipeline_errors(model):
                return job(slot.handle, request, stop.is_set)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(slot.executor, run_sync)
        try:
            return await future
        except asyncio.CancelledError:
            # The client went away: stop the job at its next step rather than finish for no one.
            stop.set()
            raise
        except _Cancelled as exc:
            raise InferenceError("The request was cancelled.") from exc

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        """Run the pipeline's chunk iterator on the model's thread, handing each chunk over.

        The worker never waits for the event loop: chunks queue up there. Leaving the iterator
        early (closed, or cancelled with the client gone) sets the stop flag, which the pipeline
        checks at each token, so the thread is free again after at most one more step.
        """
        slot = await self._ready_slot(model)
        stop = threading.Event()
        job = PIPELINES[model.pipeline].stream
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def hand_over(kind: str, value: Any) -> None:
            with suppress(RuntimeError):  # the loop has closed: no one is listening any more
                loop.call_soon_threadsafe(chunks.put_nowait, (kind, value))

        def produce() -> None:
            try:
                if stop.is_set():  # abandoned while it waited for the thread
                    return
                items = job(slot.handle, request, stop.is_set)
                with _pipeline_errors(model), closing(items):
                    for item in items:
                        if stop.is_set():
                            return
                        hand_over("chunk", item)
            except BaseException as exc:
                hand_over("error", exc)
            else:
                hand_over("end", None)

        loop.run_in_executor(slot.executor, produce)
        try:
            while True:
                kind, value = await chunks.get()
                if kind == "end":
                    return
                if kind == "error":
                    if isinstance(value, _Cancelled):
                        raise InferenceError("The request was cancelled.") from value
                    raise value
                yield value
        finally:
            stop.set()


def _ensure_demo_model(pipeline: Pipeline, folder: Path) -> None:
    """Build the tiny random-weight demo model at `folder` unless it is already there."""
    if folder.is_dir() and any(folder.iterdir()):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Built aside and renamed into place, so an interrupted first start leaves no half model.
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        PIPELINES[pipeline].build_demo(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built the demo %s model at %s (random weights)", pipeline.value, folder)
