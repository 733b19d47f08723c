"""The Modal backend: requests run in the GPU classes of the deployed Modal app (modal_app.py).

Two places use it:
- beside the orchestrator (`ADAPTER_BACKEND=modal uvicorn adapter.main:app`, with a Modal token
  in MODAL_TOKEN_ID/MODAL_TOKEN_SECRET or ~/.modal.toml): `DeployedClasses` looks the classes
  up by name in the deployed app;
- inside the Modal app, as its web function: `AppClasses` holds the classes of the same app.

Each request is spawned (`.spawn.aio`) on its model's class and awaited with the class's own
time limits; if the awaiting task is cancelled or gives up, the Modal call is cancelled too, and
the GPU side stops the pipeline at its next step. Modal's errors become the adapter's in one
place, `modal_errors`.

Health: the adapter cannot see Modal's containers, so a model is READY (/health OK) once its
class is found in the deployed app, LOADING while Modal cannot be reached yet (go-livepeer
counts that as ready, and requests then get 503), and FAILED (/health ERROR) when Modal refuses:
no token, or the app or class is not deployed. go-livepeer gives up at once on ERROR, which is
wanted: a missing deployment must stop the orchestrator's start loudly, not fail every job.
Lookups are retried in the background, so a later deploy turns ERROR into OK. A model whose
container answers that its load failed (modal_deploy/runtime.py keeps such a container up
instead of crash-looping) is FAILED too, until one of its calls succeeds again.

`modal` is imported lazily: the local backend works without it.
"""

from __future__ import annotations

import asyncio
import logging
import queue as queue_module
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from adapter.backends.base import ModelState, RunHooks
from adapter.backends.modal_errors import modal_errors, translate
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import (
    ConfigError,
    ModelUnavailableError,
    RunnerError,
    ServiceUnavailableError,
)
from contract.schemas import RequestModel
from functions.cancel import OnStep
from modal_deploy.class_plan import ClassPlan
from modal_deploy.plan import plan_class, stream_queue_name

logger = logging.getLogger(__name__)

LOOKUP_RETRY_FIRST_S = 2.0
LOOKUP_RETRY_MAX_S = 60.0
STREAM_BATCH = 100  # most chunks one read of the stream Queue takes
RELAY_RETRY_FIRST_S = 1.0  # pauses after a failed read of a job's steps, doubling...
RELAY_RETRY_MAX_S = 30.0  # ...up to this


class ModalClasses(Protocol):
    """Where the GPU classes are. `target(name)` returns an object with the interface of a
    `modal.Cls` instance: `.run.spawn.aio(request)`, `.run_reporting.spawn.aio(request,
    partition)` and `.stream_into.spawn.aio(request, partition)` give a call with
    `.get.aio(timeout=)` and `.cancel.aio()` (a `modal.FunctionCall`); `stream_queue()` the
    `modal.Queue` that `stream_into` and `run_reporting` write to."""

    async def lookup(self, name: str) -> None:
        """Raise (Modal's NotFoundError, AuthError...) unless the class is deployed."""

    def target(self, name: str) -> Any: ...

    def call(self, call_id: str) -> Any:
        """The spawned call of that id (`modal.FunctionCall.from_id`), to wait for again."""

    def stream_queue(self) -> Any: ...


class DeployedClasses:
    """The classes of a deployed app, looked up by name over Modal's API."""

    def __init__(self, app_name: str) -> None:
        self.app_name = app_name
        self._instances: dict[str, Any] = {}
        self._queue: Any = None

    async def lookup(self, name: str) -> None:
        import modal

        await modal.Cls.from_name(self.app_name, name).hydrate.aio()

    def target(self, name: str) -> Any:
        import modal

        if name not in self._instances:
            self._instances[name] = modal.Cls.from_name(self.app_name, name)()
        return self._instances[name]

    def call(self, call_id: str) -> Any:
        import modal

        return modal.FunctionCall.from_id(call_id)

    def stream_queue(self) -> Any:
        import modal

        if self._queue is None:
            name = stream_queue_name(self.app_name)
            self._queue = modal.Queue.from_name(name, create_if_missing=True)
        return self._queue


class AppClasses:
    """The classes of the running Modal app itself (the adapter served by the app)."""

    def __init__(self, classes: Mapping[str, Any], stream_queue: Any) -> None:
        self._classes = dict(classes)
        self._instances: dict[str, Any] = {}
        self._queue = stream_queue

    async def lookup(self, name: str) -> None:
        if name not in self._classes:
            # The same plan defined both, so this means a different aiModels.json.
            raise ConfigError(f"the Modal app defines no class {name}")

    def target(self, name: str) -> Any:
        if name not in self._instances:
            self._instances[name] = self._classes[name]()
        return self._instances[name]

    def call(self, call_id: str) -> Any:
        import modal

        return modal.FunctionCall.from_id(call_id)

    def stream_queue(self) -> Any:
        return self._queue


class ModalBackend:
    def __init__(
        self,
        settings: Settings,
        models: list[ServedModel],
        classes: ModalClasses | None = None,
    ) -> None:
        self.settings = settings
        now = datetime.now(UTC)
        self._plans = {model.key: plan_class(model, now) for model in models}
        self._classes = DeployedClasses(settings.modal_app) if classes is None else classes
        self._states = {key: ModelState.LOADING for key in self._plans}
        self._lookup_task: asyncio.Task[None] | None = None
        self._cancels: set[asyncio.Future[Any]] = set()
        self._without_steps: set[str] = set()  # classes deployed before run_reporting

    # --- lifecycle ---------------------------------------------------------------------

    def check(self, models: list[ServedModel]) -> None:
        for model in models:
            if model.key not in self._plans:
                raise ConfigError(f"{model.key}: not planned for Modal")

    async def start(self) -> None:
        self._lookup_task = asyncio.create_task(self._look_up_classes())

    async def close(self) -> None:
        if self._lookup_task is not None:
            self._lookup_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._lookup_task
        if self._cancels:
            # Let cancellations already sent reach Modal before the process goes.
            await asyncio.wait(self._cancels, timeout=self.settings.modal_connect_timeout_s)

    def state(self, model: ServedModel) -> ModelState:
        return self._states[model.key]

    async def _look_up_classes(self) -> None:
        pending = list(self._plans.values())
        delay = LOOKUP_RETRY_FIRST_S
        while pending:
            for plan in list(pending):
                try:
                    await asyncio.wait_for(
                        self._classes.lookup(plan.name), self.settings.modal_connect_timeout_s
                    )
                except Exception as exc:
                    error = translate(exc, plan, self.settings.retry_after_s)
                    refused = isinstance(error, ModelUnavailableError)
                    self._states[plan.model.key] = (
                        ModelState.FAILED if refused else ModelState.LOADING
                    )
                    logger.warning("Modal class %s not available yet: %r", plan.name, exc)
                else:
                    self._states[plan.model.key] = ModelState.READY
                    pending.remove(plan)
                    logger.info("Modal class %s found for %s", plan.name, plan.model.key)
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOOKUP_RETRY_MAX_S)

    # --- serving -----------------------------------------------------------------------

    async def run(
        self, model: ServedModel, request: RequestModel, hooks: RunHooks | None = None
    ) -> BaseModel:
        """A job's hooks: its call's id is told once spawned (`on_call`), and a call id given
        (`call_id`) is waited for again rather than spawned twice. With `on_step`, the class's
        `run_reporting` tells each step in a partition of the stream Queue, handed on here while
        the call runs (a call waited for again, after a restart, tells none)."""
        plan = self._plans[model.key]
        relaying: asyncio.Future[None] | None = None
        with modal_errors(plan, self.settings.retry_after_s):
            if hooks is not None and hooks.call_id:
                call = self._classes.call(hooks.call_id)
            else:
                target = self._classes.target(plan.name)
                on_step = hooks.on_step if hooks is not None else None
                if plan.name in self._without_steps:
                    on_step = None
                partition = uuid.uuid4().hex
                call = None
                if on_step is not None:
                    call = await self._spawn_reporting(plan, target, request, partition)
                if call is None:
                    on_step = None
                    call = await self._spawn(target.run, request)
                if hooks is not None and hooks.on_call is not None:
                    try:
                        await hooks.on_call(call.object_id)
                    except BaseException:
                        await self._cancel(call)
                        raise
                if on_step is not None:
                    relaying = asyncio.ensure_future(self._relay_steps(plan, partition, on_step))
            try:
                result = await call.get.aio(timeout=plan.call_wait_s)
            except ModelUnavailableError:
                self._states[model.key] = ModelState.FAILED  # its load failed: /health ERROR
                raise
            except RunnerError:
                raise  # raised in the container: the call is over
            except TimeoutError as exc:
                await self._cancel(call)
                raise ServiceUnavailableError(
                    f"No result from Modal for {model.key} within {plan.call_wait_s} s (waiting "
                    "for a GPU?); the call was cancelled.",
                    self.settings.retry_after_s,
                ) from exc
            except BaseException:
                # Cancelled (the client went away) or cut off from Modal: stop the GPU work,
                # unless the adapter is stopping under a job that the next start waits for.
                if hooks is None or not hooks.keep_call:
                    await self._cancel(call)
                raise
            finally:
                if relaying is not None:
                    relaying.cancel()
        self._states[model.key] = ModelState.READY
        assert isinstance(result, BaseModel)
        return result

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        """Spawn the class's `stream_into` and read its chunks from this request's partition
        of the stream Queue. Leaving early (closed: the client went away) cancels the call,
        which stops the generation on the GPU at its next step."""
        plan = self._plans[model.key]
        queue, partition = self._classes.stream_queue(), uuid.uuid4().hex
        with modal_errors(plan, self.settings.retry_after_s):
            target = self._classes.target(plan.name)
            call = await self._spawn(target.stream_into, request, partition)
            outcome = asyncio.ensure_future(call.get.aio(timeout=plan.call_wait_s))
            over = False
            try:
                while True:
                    for kind, value in await self._next_items(plan, queue, partition, outcome):
                        if kind == "chunk":
                            yield value
                            continue
                        over = True
                        if kind == "error":
                            if isinstance(value, ModelUnavailableError):
                                self._states[model.key] = ModelState.FAILED
                            raise value  # raised in the container, translated there
                        self._states[model.key] = ModelState.READY
                        return
            finally:
                outcome.cancel()  # stops waiting here, not the call
                if outcome.done() and not outcome.cancelled():
                    outcome.exception()  # seen: a failure after the end is no one's to raise
                if not over:
                    await self._cancel(call)

    async def _next_items(
        self, plan: ClassPlan, queue: Any, partition: str, outcome: asyncio.Future[Any]
    ) -> list[tuple[str, Any]]:
        """The next items of a streamed call, or the error that ended the call first (a
        failed container start, Modal's time limit): it then wrote none."""
        getting = asyncio.ensure_future(
            queue.get_many.aio(STREAM_BATCH, timeout=plan.call_wait_s, partition=partition)
        )
        try:
            await asyncio.wait({getting, outcome}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done() and (failure := outcome.exception()) is not None:
                raise failure
            items: list[tuple[str, Any]] = await getting  # its last items are on their way
            return items
        except queue_module.Empty as exc:
            raise ServiceUnavailableError(
                f"No stream from Modal for {plan.model.key} within {plan.call_wait_s} s "
                "(waiting for a GPU?); the call was cancelled.",
                self.settings.retry_after_s,
            ) from exc
        finally:
            getting.cancel()

    async def _spawn_reporting(
        self, plan: ClassPlan, target: Any, request: RequestModel, partition: str
    ) -> Any:
        """The call of the class's `run_reporting`, or None when the deployed app predates it
        (Modal's NotFoundError for the method: the caller spawns `run`, and steps are not told
        until `modal deploy modal_app.py` runs again; a missing class fails `run` too)."""
        import modal.exception

        try:
            return await self._spawn(target.run_reporting, request, partition)
        except modal.exception.NotFoundError as exc:
            self._without_steps.add(plan.name)
            logger.warning(
                "%s: the deployed class has no run_reporting (%s): its jobs run without "
                "progress until `modal deploy modal_app.py` deploys this version",
                plan.name,
                exc,
            )
            return None

    async def _relay_steps(self, plan: ClassPlan, partition: str, on_step: OnStep) -> None:
        """Hand the latest step told in `partition` to `on_step` (here, on the event loop),
        until cancelled. Progress is extra: a failed read is logged once and tried again after
        a growing pause, and never fails the run."""
        queue = self._classes.stream_queue()
        pause_s, warned = RELAY_RETRY_FIRST_S, False
        while True:
            try:
                items = await queue.get_many.aio(
                    STREAM_BATCH, timeout=plan.call_wait_s, partition=partition
                )
            except queue_module.Empty:
                continue
            except Exception as exc:
                if not warned:
                    logger.warning("%s: could not read the steps: %r", plan.model.key, exc)
                    warned = True
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, RELAY_RETRY_MAX_S)
                continue
            steps = [value for kind, value in items if kind == "step"]
            if steps:
                on_step(*steps[-1])

    async def _spawn(self, method: Any, *args: Any) -> Any:
        spawning = asyncio.ensure_future(method.spawn.aio(*args))
        timeout = self.settings.modal_connect_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(spawning), timeout)
        except TimeoutError as exc:
            spawning.add_done_callback(self._cancel_once_spawned)
            raise ServiceUnavailableError(
                f"Modal did not accept the call within {timeout:g} s.", self.settings.retry_after_s
            ) from exc
        except asyncio.CancelledError:
            # Cancelled while Modal was accepting the call: cancel the call once it exists.
            spawning.add_done_callback(self._cancel_once_spawned)
            raise

    def _cancel_once_spawned(self, spawning: asyncio.Future[Any]) -> None:
        if spawning.cancelled() or spawning.exception() is not None:
            return
        task = asyncio.ensure_future(self._cancel(spawning.result()))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel(self, call: Any) -> None:
        """Cancel a Modal call, waiting at most the connect timeout (it goes on if cut short)."""
        sending = asyncio.ensure_future(call.cancel.aio())
        self._cancels.add(sending)
        sending.add_done_callback(self._cancels.discard)
        sending.add_done_callback(_log_cancel_failure)
        # A failure is logged by the callback; the caller's own error must not be replaced.
        with suppress(Exception):
            await asyncio.wait_for(asyncio.shield(sending), self.settings.modal_connect_timeout_s)


def _log_cancel_failure(sending: asyncio.Future[Any]) -> None:
    if not sending.cancelled() and (exc := sending.exception()) is not None:
        logger.warning("cancelling a Modal call failed: %r", exc)
