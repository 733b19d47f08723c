"""The GPU classes of modal_app.py, run in this process with the interface the Modal backend uses.

`InProcessClasses` stands where Modal's deployed classes stand (`ModalClasses`): a target's
`.run.spawn.aio(request)` runs the class's own method through Modal's local execution path
(`.local()`, after the class's enter methods ran) as an asyncio task, and returns a call with
`.get.aio(timeout=)` and `.cancel.aio()`. As on Modal:
- arguments, results and errors cross Modal's own serializer (what would travel over the wire);
- `get` raises the builtin TimeoutError when no result is ready in time;
- an input running past the class's `timeout` is stopped and raises FunctionTimeoutError;
- `cancel` cancels the input's task (Modal cancels an async input the same way);
- `InProcessQueue` stands for the stream `modal.Queue`: partitions whose items cross Modal's
  serializer, `get_many` raising queue.Empty past its timeout;
- `InProcessDict` stands for the failed-marks `modal.Dict` (blocking `get`/`put`, as a
  container calls them), its keys and values crossing Modal's serializer.
Nothing here returns canned output: every result comes from the real class and pipeline.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import queue
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import modal
import modal.exception
from modal._serialization import deserialize, serialize

from modal_deploy.settings import MODELS_JSON_ENV

_ids = itertools.count(1)


def over_the_wire(value: Any) -> Any:
    return deserialize(serialize(value), None)


class _Aio:
    """Gives a coroutine function the `.aio` spelling of Modal's synchronicity wrappers."""

    def __init__(self, function: Any) -> None:
        self.aio = function


class InProcessCall:
    def __init__(self, task: asyncio.Task[Any], get_wait_cap_s: float | None) -> None:
        self.object_id = f"fc-inprocess-{next(_ids)}"
        self.task = task
        self.cancel_requested = False
        self._cap = get_wait_cap_s
        self.get = _Aio(self._get)
        self.cancel = _Aio(self._cancel)

    async def _get(self, timeout: float | None = None) -> Any:
        wait = timeout if self._cap is None else min(timeout or self._cap, self._cap)
        # shield: giving up waiting does not stop the input, as on Modal.
        return await asyncio.wait_for(asyncio.shield(self.task), wait)

    async def _cancel(self, terminate_containers: bool = False) -> None:
        self.cancel_requested = True
        self.task.cancel()


class InProcessQueue:
    def __init__(self) -> None:
        self.partitions: dict[str, asyncio.Queue[Any]] = {}
        self.ttls: list[int] = []  # each write's partition_ttl
        self.put_many = _Aio(self._put_many)
        self.get_many = _Aio(self._get_many)

    def _partition(self, key: str | None) -> asyncio.Queue[Any]:
        return self.partitions.setdefault(key or "", asyncio.Queue())

    async def _put_many(
        self,
        vs: list[Any],
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
        partition_ttl: int = 24 * 3600,
    ) -> None:
        if not 0 < partition_ttl <= 24 * 3600:
            raise modal.exception.InvalidError(f"partition_ttl {partition_ttl} is out of range")
        self.ttls.append(partition_ttl)
        for value in vs:
            self._partition(partition).put_nowait(over_the_wire(value))

    async def _get_many(
        self,
        n_values: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
    ) -> list[Any]:
        items = self._partition(partition)
        try:
            got = [await asyncio.wait_for(items.get(), timeout)]
        except TimeoutError:
            raise queue.Empty() from None
        while len(got) < n_values and not items.empty():
            got.append(items.get_nowait())
        return got


class InProcessDict:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: Any, default: Any | None = None) -> Any:
        found = self.data.get(serialize(key))
        return default if found is None else deserialize(found, None)

    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        if skip_if_exists and serialize(key) in self.data:
            return False
        self.data[serialize(key)] = serialize(value)
        return True

    def clear(self) -> None:
        """What `modal dict clear <name>` does."""
        self.data.clear()


class InProcessMethod:
    def __init__(self, target: InProcessTarget, name: str) -> None:
        self._target = target
        self._name = name
        self.spawn = _Aio(self._spawn)

    async def _spawn(self, *args: Any) -> InProcessCall:
        owner = self._target.owner
        if owner.spawn_error is not None:
            raise owner.spawn_error
        if owner.spawn_gate is not None:
            await owner.spawn_gate.wait()
        task = asyncio.create_task(self._invoke(over_the_wire(args)))
        call = InProcessCall(task, owner.get_wait_cap_s)
        owner.calls.append(call)
        return call

    async def _invoke(self, args: tuple[Any, ...]) -> Any:
        method = getattr(self._target.obj, self._name)
        timeout = (await method.info.aio()).timeout
        try:
            result = await asyncio.wait_for(method.local(*args), timeout)
        except TimeoutError:
            raise modal.exception.FunctionTimeoutError(
                f"Function timed out after {timeout} s"
            ) from None
        except Exception as exc:
            raise over_the_wire(exc) from None
        return over_the_wire(result)


class InProcessTarget:
    def __init__(self, cls: Any, owner: InProcessClasses) -> None:
        self.owner = owner
        self.obj = cls()
        # A sync method's `.local()` runs the enter methods (the model loads here); an async
        # method's would not (modal 1.6.4).
        self.loaded = self.obj.check.local()
        self.run = InProcessMethod(self, "run")
        self.run_reporting = InProcessMethod(self, "run_reporting")
        self.stream_into = InProcessMethod(self, "stream_into")


class InProcessClasses:
    def __init__(
        self,
        classes: Mapping[str, Any],
        stream_queue: InProcessQueue,
        *,
        lookup_error: BaseException | None = None,
        spawn_error: BaseException | None = None,
        spawn_gate: asyncio.Event | None = None,
        get_wait_cap_s: float | None = None,
    ) -> None:
        self.lookup_error = lookup_error
        self.spawn_error = spawn_error
        self.spawn_gate = spawn_gate
        self.get_wait_cap_s = get_wait_cap_s
        self.calls: list[InProcessCall] = []
        self.compile_cache_commits: list[str] = []
        self.failed_marks = InProcessDict()  # the fixture sets the classes' own
        self.queue = stream_queue
        self.classes = dict(classes)
        self._targets: dict[str, InProcessTarget] = {}

    def load(self) -> InProcessClasses:
        """Start every class's container (enter methods) now, before the event loop runs."""
        for name in self.classes:
            self.target(name)
        return self

    async def lookup(self, name: str) -> None:
        if self.lookup_error is not None:
            raise self.lookup_error
        if name not in self.classes:
            raise modal.exception.NotFoundError(f"Class '{name}' not found in the app")

    def stream_queue(self) -> InProcessQueue:
        return self.queue

    def call(self, call_id: str) -> InProcessCall:
        """A spawned call by its id, as `modal.FunctionCall.from_id` finds it."""
        for call in self.calls:
            if call.object_id == call_id:
                return call
        raise modal.exception.NotFoundError(f"No function call {call_id}")

    def target(self, name: str) -> InProcessTarget:
        if name not in self._targets:
            self._targets[name] = InProcessTarget(self.classes[name], self)
        return self._targets[name]


def import_modal_app(env: Mapping[str, str], module: str = "modal_app") -> ModuleType:
    """A fresh import of modal_app.py (or `module`) under `env`, as `modal deploy` or a
    container does it.

    The module is taken out of sys.modules again so each caller gets its own configuration.
    """
    saved_module = sys.modules.pop(module, None)
    saved_env = {name: os.environ.get(name) for name in (*env, MODELS_JSON_ENV)}
    os.environ.pop(MODELS_JSON_ENV, None)
    os.environ.update(env)
    try:
        return importlib.import_module(module)
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        sys.modules.pop(module, None)
        if saved_module is not None:
            sys.modules[module] = saved_module


def tiny_entries(model_path: Path) -> list[dict[str, Any]]:
    """Two models over one tiny SD folder: a warm one, and a cold one with a 1 s time limit."""
    return [
        {
            "pipeline": "text-to-image",
            "model_id": "test/tiny-sd",
            "warm": True,
            "capacity": 2,
            "runner": {
                "default": True,
                "model_path": str(model_path),
                "modal": {"gpu": "T4", "timeout": 600},
            },
        },
        {
            "pipeline": "text-to-image",
            "model_id": "test/one-second-sd",
            "capacity": 1,
            "runner": {"model_path": str(model_path), "modal": {"timeout": 1, "snapshot": "off"}},
        },
    ]


def modal_token_configured() -> bool:
    import modal.config

    return bool(modal.config.config.get("token_id") or modal.config.config.get("token_secret"))


# --- a function's dependencies, as the deploy records them and as its container finds them ---

DEPLOY_VARIABLES = ("ADAPTER_", "RUNNER_", "AUTH_TOKEN")


def deploy_dependencies(obj: Any) -> list[Any]:
    """The dependencies `modal deploy` records for a Function or Cls (the object ids of
    `function_def.object_dependencies`, in this order: modal/_functions.py, `_deps`)."""
    from modal._utils.async_utils import synchronizer

    impl = synchronizer._translate_in(obj)
    if isinstance(impl, modal.cls._Cls):
        impl = impl._get_class_service_function()
    return list(impl._deps_(only_explicit_mounts=True))


def container_import(
    module_name: str, name: str, env: Mapping[str, str]
) -> tuple[list[Any], ModuleType]:
    """The dependencies a container finds for `name` of `module_name`, imported as Modal's
    container imports it (modal/_runtime/user_code_imports.py) in a container whose
    environment is `env` alone: none of this shell's ADAPTER_*/RUNNER_* variables reach a
    container, only what the function's own `env` and Secrets set. And the module as the
    container imported it."""
    from modal._runtime.user_code_imports import import_single_function_service
    from modal_proto import api_pb2

    saved_env = {k: v for k, v in os.environ.items() if k.startswith(DEPLOY_VARIABLES)}
    saved_module = sys.modules.pop(module_name, None)
    for key in saved_env:
        del os.environ[key]
    os.environ.update(env)
    try:
        definition = api_pb2.Function(
            module_name=module_name, function_name=name, implementation_name=name
        )
        module = importlib.import_module(module_name)
        if isinstance(getattr(module, name), modal.Cls):
            # The decorated-class path of `import_class_service`, without its server calls.
            return deploy_dependencies(getattr(module, name)), module
        service = import_single_function_service(definition, None)
        assert service.service_deps is not None
        return list(service.service_deps), module
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved_env)
        sys.modules.pop(module_name, None)
        if saved_module is not None:
            sys.modules[module_name] = saved_module


def dependency_mismatch(deployed: list[Any], found: list[Any]) -> str:
    """What modal/_container_entrypoint.py refuses (it raises ExecutionError "Function has N
    dependencies but container got M object ids"), or would hydrate wrongly: each object id
    hydrates the object at the same position. Empty when they agree."""
    if len(found) != len(deployed):
        return (
            f"Function has {len(found)} dependencies but container got {len(deployed)} object ids"
        )
    for position, (sent, got) in enumerate(zip(deployed, found, strict=True)):
        if type(sent) is not type(got) or repr(sent) != repr(got):
            return f"dependency {position}: deployed {sent!r}, the container has {got!r}"
    return ""
