"""One model on one thread: find, load, move, optimize, run, stream and stop it.

The local backend holds one per served model, each Modal GPU class (modal_deploy/runtime.py)
one for its model: "run a model on its thread" and the translation of pipeline errors exist once.
One thread per model because a diffusers pipeline is not safe to call from two threads at once;
requests wait their turn on it. The thread starts on first use, so nothing runs beside a process
about to be snapshotted (Modal).

States (ModelState), changed only by `_move`, under a lock:
    COLD -> LOADING -> READY;  LOADING -> FAILED;  FAILED -> LOADING (a retry, when the backend
    decides, `max_load_attempts` loads at most);  COLD -> FAILED (the check at start: weights
    missing where the config says).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from adapter.backends.base import ModelState
from adapter.pipeline_errors import StopFlag, pipeline_errors
from adapter.pipelines.base import PipelineRunner
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import (
    ModelUnavailableError,
)
from contract.schemas import RequestModel
from functions.cancel import GenerationCancelled, OnStep

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


_TRANSITIONS: dict[ModelState, frozenset[ModelState]] = {
    ModelState.COLD: frozenset({ModelState.LOADING, ModelState.FAILED}),
    ModelState.LOADING: frozenset({ModelState.READY, ModelState.FAILED}),
    ModelState.READY: frozenset(),
    ModelState.FAILED: frozenset({ModelState.LOADING}),
}


class ModelWorker:
    """One served model, its handle and its thread."""

    def __init__(self, model: ServedModel, settings: Settings, glue: PipelineRunner) -> None:
        self.model = model
        self.settings = settings
        self.glue = glue
        self.device: torch.device | None = None  # where the handle is, once loaded
        self.load_s = 0.0
        self._handle: Any = None
        self._state = ModelState.COLD
        self._error = ""
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._loading: Future[None] | None = None
        self._closed = False
        self.load_attempts = 0  # bounded by settings.max_load_attempts

    @property
    def state(self) -> ModelState:
        return self._state

    @property
    def error(self) -> str:
        """Why the model is FAILED (empty otherwise)."""
        return self._error

    def _move(self, to: ModelState, error: str = "", *, claim: bool = False) -> bool:
        """The one writer of the state, under the lock: refuses a transition the machine does
        not have (a bug), or with `claim` returns False for it (another caller got there)."""
        with self._lock:
            if to not in _TRANSITIONS[self._state]:
                if claim:
                    return False
                raise RuntimeError(f"{self.model.key}: no transition {self._state} -> {to}")
            self._state, self._error = to, error
            return True

    @property
    def gave_up(self) -> bool:
        """FAILED for good: its loads were tried `max_load_attempts` times."""
        return (
            self._state is ModelState.FAILED
            and self.load_attempts >= self.settings.max_load_attempts
        )

    def _claim_load(self) -> bool:
        """COLD or FAILED -> LOADING, atomically: True for the one caller that got to load.
        After `max_load_attempts` failed loads, never again: the model stays FAILED (/health
        ERROR) instead of reloading GBs over and over for a cause that will not go away."""
        if self._closed or self.gave_up:
            return False
        with self._lock:  # counted with the move, so two callers cannot both count
            if ModelState.LOADING not in _TRANSITIONS[self._state]:
                return False
            self._state, self._error = ModelState.LOADING, ""
            self.load_attempts += 1
            return True

    def _thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            if self._closed:
                raise ModelUnavailableError(f"Model {self.model.model_id} is shutting down.")
            prefix = f"model-{self.model.model_id}"
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=prefix)
        return self._executor

    def close(self) -> None:
        """Stop taking work; queued jobs are dropped, a running one ends at its next step."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- weights ---------------------------------------------------------------------------

    def check_weights(self) -> bool:
        """At start: are the weights where the configuration says (a file check, no load)?
        If not, FAILED at once (/health ERROR), naming the model and the path. Demo models
        are built when loaded, not checked."""
        if self.model.runner.demo:
            return True
        from functions.loading import ModelNotFoundError, resolve_model_path

        try:
            resolve_model_path(
                self.model.model_id, self.model.runner.model_path, self.settings.model_dir
            )
        except ModelNotFoundError as exc:
            logger.error("%s: weights missing: %s", self.model.key, exc)
            self._move(ModelState.FAILED, str(exc))
            return False
        return True

    def target_device(self, probe: bool = True) -> torch.device:
        """The device the model serves on, the settings' choice: `auto` probes for CUDA; with
        probe=False a named device is taken as given (no CUDA call before a CPU snapshot)."""
        import torch

        from functions.device import pick_device

        preference = self.settings.device
        if probe or preference == "auto":
            return pick_device(preference)
        return torch.device(preference)

    # --- loading (blocking, on the calling thread) ------------------------------------------

    def load(self, on: torch.device | None = None, *, finish: bool = True) -> None:
        """Load the weights onto `on` (default: the target device) in the dtype of the target
        device, then (`finish`) move and optimize them there: READY. With finish=False the
        model stays LOADING until `finish` (Modal: loaded before a memory snapshot, finished
        after each restore). Raises ModelUnavailableError naming the model on failure."""
        if not self._claim_load():
            if self.gave_up:
                raise ModelUnavailableError(self._unavailable_msg())
            raise RuntimeError(f"{self.model.key} cannot load while {self._state}")
        self._loading_step(self._load_weights, on)
        if finish:
            self._loading_step(self._finish)

    def finish(self) -> None:
        """Move a handle loaded elsewhere to the target device and optimize it there (compile
        and warm up belong on the final device): READY. Loads first if nothing was loaded."""
        if self._handle is None:
            self.load()
        else:
            self._loading_step(self._finish)

    def _loading_step(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:
            logger.exception("loading %s failed", self.model.key)
            self._handle = None
            self._move(ModelState.FAILED, str(exc) or type(exc).__name__)
            raise ModelUnavailableError(self._unavailable_msg()) from exc

    def _load_weights(self, on: torch.device | None) -> None:
        from functions.device import pick_dtype
        from functions.loading import resolve_model_path

        model, runner = self.model, self.model.runner
        started = time.monotonic()
        if runner.demo and runner.model_path:
            build_demo_model(self.glue, Path(runner.model_path))
        folder = resolve_model_path(model.model_id, runner.model_path, self.settings.model_dir)
        # Loaded elsewhere first (the CPU, before a snapshot), in the dtype of its target.
        target = self.target_device(probe=on is None)
        device = target if on is None else on
        dtype = pick_dtype(target, runner.torch_dtype)
        self._handle = self.glue.load(model, folder, device, dtype, self.settings)
        self.device = device
        self.load_s = time.monotonic() - started
        logger.info("%s loaded on %s in %.1f s", model.key, device, self.load_s)

    def _finish(self) -> None:
        target = self.target_device()
        if self.device != target:
            started = time.monotonic()
            self._handle = self.glue.to_device(self._handle, target)
            self.device = target
            moved_s = time.monotonic() - started
            logger.info("%s moved to %s in %.1f s", self.model.key, target, moved_s)
        self.glue.optimize(self._handle, self.model, self.settings)
        self._move(ModelState.READY)

    def _unavailable_msg(self) -> str:
        msg = f"Model {self.model.model_id} failed to load: {self._error}"
        if self.gave_up:
            msg += (
                f" (tried {self.load_attempts} times, ADAPTER_MAX_LOAD_ATTEMPTS; not tried "
                "again until a restart)"
            )
        return msg

    # --- loading (on the model's thread) ----------------------------------------------------

    def start_load(self, turn: threading.Lock | None = None) -> bool:
        """Begin loading on the model's thread unless it is loading or loaded already; True
        when this call started it. `turn`, shared between workers, makes their loads take
        turns (loading several models at once only multiplies peak memory)."""
        if not self._claim_load():
            return False
        self._loading = self._thread().submit(self._load_in_turn, turn)
        return True

    def _load_in_turn(self, turn: threading.Lock | None) -> None:
        with turn if turn is not None else nullcontext():
            if self._closed:  # shut down while it waited for its turn
                self._move(ModelState.FAILED, "the service is shutting down")
                return
            # Claimed (LOADING) by start_load; FAILED and logged by a step that raises.
            with suppress(ModelUnavailableError):
                self._loading_step(self._load_weights, None)
                self._loading_step(self._finish)

    async def wait_loaded(self, timeout_s: float) -> None:
        """Wait for a load under way; raise ModelUnavailableError if it failed or is still
        going after `timeout_s`."""
        loading = self._loading
        if self._state is ModelState.LOADING and loading is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(loading)), timeout_s)
            except TimeoutError:
                raise ModelUnavailableError(
                    f"Model {self.model.model_id} is still loading after {timeout_s:g} s "
                    "(model_load_wait_s); retry later."
                ) from None
        self._require_ready()

    def _require_ready(self) -> Any:
        if self._state is ModelState.FAILED:
            raise ModelUnavailableError(self._unavailable_msg())
        if self._state is not ModelState.READY:
            raise ModelUnavailableError(f"Model {self.model.model_id} is not loaded yet.")
        return self._handle

    # --- serving ---------------------------------------------------------------------------

    async def run(
        self,
        request: RequestModel,
        time_limit_s: float | None = None,
        on_step: OnStep | None = None,
    ) -> BaseModel:
        """Serve one request on the model's thread (`on_step` hears of each step, there).
        Cancelled (the client went away), it ends at its next step, or never starts if still
        queued. `time_limit_s` bounds it from when it reaches the thread, with a 500 saying so."""
        handle = self._require_ready()
        stop = StopFlag(time_limit_s, on_step)

        def job() -> BaseModel:
            stop.start_clock()
            with pipeline_errors(self.model, stop):
                return self.glue.run(handle, request, stop)

        future = asyncio.get_running_loop().run_in_executor(self._thread(), job)
        try:
            return await future
        except asyncio.CancelledError:
            stop.set()
            raise

    async def stream(
        self, request: RequestModel, time_limit_s: float | None = None
    ) -> AsyncGenerator[BaseModel]:
        """Run the pipeline's chunk iterator on the model's thread, handing each chunk over
        (the thread never waits for the event loop: chunks queue up there). Leaving early
        (closed, or cancelled: the client went away) sets the stop flag, which the pipeline
        checks at each step. `time_limit_s` as for `run`."""
        handle = self._require_ready()
        stop = StopFlag(time_limit_s)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def hand_over(kind: str, value: Any) -> None:
            with suppress(RuntimeError):  # the loop has closed: no one is listening any more
                loop.call_soon_threadsafe(chunks.put_nowait, (kind, value))

        def produce() -> None:
            try:
                if stop():  # abandoned while it waited for the thread
                    return
                stop.start_clock()
                with pipeline_errors(self.model, stop):
                    items = self.glue.stream(handle, request, stop)
                    with closing(cast("Generator[BaseModel]", items)):  # glue streams are
                        for item in items:  # generators: closed here, on the model's thread
                            if stop():
                                if stop.overdue():
                                    raise GenerationCancelled()
                                return
                            hand_over("chunk", item)
            except BaseException as exc:
                hand_over("error", exc)
            else:
                hand_over("end", None)

        producing = loop.run_in_executor(self._thread(), produce)
        try:
            while True:
                kind, value = await chunks.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()
            producing.cancel()  # a job still queued never starts


def build_demo_model(glue: PipelineRunner, folder: Path) -> None:
    """Build the tiny random-weight demo model at `folder` unless it is already there."""
    if folder.is_dir() and any(folder.iterdir()):
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Built aside and renamed into place, so an interrupted first start leaves no half model.
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        glue.build_demo(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built the demo %s model at %s (random weights)", glue.pipeline.value, folder)
