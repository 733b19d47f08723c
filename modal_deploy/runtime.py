"""What runs inside the Modal app's containers: the GPU class body, the image, the web app.

`modal_app.py` generates one GPU class per (pipeline, model) of the plan with
`define_gpu_classes`, the one place a class is defined: its body is `GpuModel` here, its options
all come from the plan (`AppPlan.gpu_class_options`). A class stands on the same model worker
as the local backend (adapter/worker.py: load, run, stream, stop, the translation of pipeline
errors) and runs the requests the adapter prepared (uploads already in memory), so both
backends answer alike. Its settings are the plan's (`AppPlan.gpu_settings`): plain data the
deploy computed; nothing here reads the environment.

Loading is split for Modal's memory snapshots (`runner.modal.snapshot`):
- "cpu" (default): before the snapshot, the heavy imports and, where the glue can move its model
  (`PipelineRunner.movable`), the weights loaded into CPU memory: the expensive part, reading
  GBs from the Volume and building the modules. After each restore only the move to the GPU is
  left. No CUDA call happens before the snapshot (CPU snapshots have no GPU then).
- "gpu": the model loads straight onto the GPU, is compiled and warmed up there (the worker's
  `finish`) before Modal's GPU snapshot (alpha; see docs/modal.md for its caveats), so a
  restored container serves at once.
- "off": one load after start.
Otherwise compiling and warming up happen on the final device, after the snapshot. Once a model
is ready, the compile-cache Volume is committed (kernels compiled here reach later containers);
the weights Volume is mounted read-only.

A failed load does not fail the container: Modal would replace it and load again, over and
over, on billed GPUs (a warm pool crash-loops). The container stays up with its worker FAILED,
answers each input at once with the load's error (a 500 naming it), and lowers its class's warm
pool to 0 (`min_containers`), so idle failed containers go after `scaledown_window`; a load is
tried again only in a new container, `max_load_attempts` times at most in one. Once a load failed
for good, the container also marks its class failed in the failed-marks Dict (key: the class's
name and definition identity, `ClassPlan.failed_key`), which the warm schedule's function reads:
a marked class stays at 0 warm containers in every window, instead of a fresh GPU container
loading, failing and standing down at each cron run. A redeploy with new weights or an edited
entry is a new key; `modal dict clear <app>-failed` clears the marks (docs/modal.md).

Methods are `async` on purpose: Modal cancels an async input by cancelling its task, which sets
the stop flag the pipelines check between steps. A cancelled sync input with concurrency on
would make Modal stop the whole container.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import modal
from pydantic import BaseModel

from adapter.backends.base import ModelState
from adapter.pipelines import PIPELINES
from adapter.pipelines.base import PipelineRunner
from adapter.settings import Settings
from adapter.worker import ModelWorker
from contract.aimodels import ServedModel
from contract.errors import ModelUnavailableError
from contract.pipelines import Pipeline
from contract.schemas import RequestModel
from modal_deploy.class_plan import ClassPlan
from modal_deploy.plan import (
    COMPILE_CACHE_MOUNT,
    IMAGE_PACKAGES,
    LOCAL_PACKAGES,
    MODELS_MOUNT,
    PYTHON_VERSION,
    AppPlan,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from adapter.backends.modal import ModalClasses

logger = logging.getLogger(__name__)


def build_image() -> modal.Image:
    """The one image of every function: the adapter's pinned dependencies and its packages."""
    return (
        modal.Image.debian_slim(python_version=PYTHON_VERSION)
        .uv_pip_install(*IMAGE_PACKAGES)
        .env({"HF_HUB_CACHE": MODELS_MOUNT, "HF_HUB_DISABLE_TELEMETRY": "1"})
        .add_local_python_source(*LOCAL_PACKAGES)
    )


def volume_committer(volume: Any) -> Callable[[], None]:
    """Commit `volume` (a modal.Volume) from a container; nothing to do outside one."""

    def commit() -> None:
        if not modal.is_local():
            volume.commit()

    return commit


class GpuModel:
    """The body of a generated GPU class; `define_gpu_classes` sets the class attributes."""

    plan: ClassVar[ClassPlan]
    settings: ClassVar[Settings]
    pipelines: ClassVar[Mapping[Pipeline, PipelineRunner]]
    stream_queue: ClassVar[Any]  # a modal.Queue (see stream_into)
    compile_cache_commit: ClassVar[Callable[[], None]]  # a staticmethod: no self
    modal_cls: ClassVar[Any]  # the modal.Cls of this class, to lower its own warm pool
    failed_marks: ClassVar[Any]  # a modal.Dict (see _mark_failed); None: none kept
    failed_marks_name: ClassVar[str]
    worker: ModelWorker
    stood_down = False

    # --- loading -------------------------------------------------------------------------

    def _before_snapshot(self) -> None:
        import diffusers  # noqa: F401  (imported here so the snapshot holds them)
        import torch
        import transformers  # noqa: F401

        model = self.plan.served_model  # from its pinned snapshot folders
        self.worker = ModelWorker(model, self.settings, self.pipelines[model.pipeline])
        if self.plan.snapshot == "gpu":
            # Loaded, compiled and warmed up on the GPU: all of it in the GPU snapshot.
            self._loading(lambda: self.worker.load(finish=True), stand_down=False)
        elif self.plan.snapshot == "cpu" and self.worker.glue.movable:
            cpu = torch.device("cpu")
            self._loading(lambda: self.worker.load(cpu, finish=False), stand_down=False)

    def _after_restore(self) -> None:
        if self.worker.state is not ModelState.READY:
            # Finishes what the snapshot holds, or loads again if its load failed there.
            self._loading(self.worker.finish, stand_down=True)

    def _loading(self, step: Callable[[], None], *, stand_down: bool) -> None:
        """Run a loading step; a failure leaves the worker FAILED (inputs answered with its
        error) instead of failing the container. Before a snapshot nothing more: the restored
        container tries again (an operator who fixed the weights redeploys, which also makes a
        new snapshot); after it, the class's warm pool is lowered to 0."""
        try:
            step()
        except ModelUnavailableError as exc:
            logger.error("%s: %s", self.plan.name, exc)
            if stand_down:
                self._stand_down()
            return
        if self.worker.state is ModelState.READY:
            try:
                type(self).compile_cache_commit()
            except Exception as exc:  # a cache not kept costs a compile later, not a request
                logger.warning("%s: compile cache not committed: %r", self.plan.name, exc)

    def _stand_down(self) -> None:
        """Lower this class's warm pool to 0, so idle failed containers go after
        `scaledown_window` instead of being kept (and billed); the next deploy, or the warm
        schedule's next run, sets it back, until the class is held cold (`_mark_failed`)."""
        self.stood_down = True
        self._mark_failed()
        if modal.is_local():
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", modal.exception.DeprecationError)
                self.modal_cls().update_autoscaler(min_containers=0)
        except Exception as exc:
            logger.warning("%s: warm pool not lowered: %r", self.plan.name, exc)
        else:
            logger.error("%s: warm pool lowered to 0 after a failed load", self.plan.name)

    def _mark_failed(self) -> None:
        """Add this container's failed loads to its definition's count in the failed-marks
        Dict, which the warm schedule reads (`AppPlan.held_cold`): past `max_load_attempts`
        over all containers, the class stays cold in every window. Two containers failing at
        once may count one (one more try); a mark not written costs a failed load a window."""
        marks = type(self).failed_marks
        if marks is None:
            return
        key = self.plan.failed_key
        try:
            before = marks.get(key) or {}
            loads = int(before.get("loads", 0)) + self.worker.load_attempts
            marks.put(key, {"loads": loads, "error": self.worker.error})
        except Exception as exc:
            logger.warning("%s: failed load not recorded: %r", self.plan.name, exc)
            return
        if loads >= self.settings.max_load_attempts:
            logger.error(
                "%s: %d failed loads of %s: the warm schedule keeps it cold until a redeploy "
                "with new weights or an edited entry, or `modal dict clear %s`",
                self.plan.name,
                loads,
                key,
                self.failed_marks_name,
            )

    # --- methods -------------------------------------------------------------------------

    @modal.method()
    def check(self) -> dict[str, str]:
        """What this container serves, once loaded: a deployment check that costs no request."""
        import torch

        device = self.worker.device
        on_cuda = device is not None and device.type == "cuda"
        return {
            "model": self.plan.model.key,
            "class": self.plan.name,
            "state": self.worker.state.value,
            "error": self.worker.error,
            "revisions": ",".join(f"{repo}@{sha[:10]}" for repo, sha in self.plan.revisions),
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if on_cuda else "",
            "load_s": f"{self.worker.load_s:.1f}",
        }

    @modal.method()
    async def run(self, request: RequestModel) -> BaseModel:
        # Each run bounded on its own; the class's Modal timeout also covers its wait here.
        return await self.worker.run(request, time_limit_s=self.plan.run_timeout)

    @modal.method()
    async def run_reporting(self, request: RequestModel, partition: str) -> BaseModel:
        """`run`, telling the pipeline's steps in `partition` of the stream Queue as
        ("step", (step, total)) for the adapter to show a job's progress. One write travels at
        a time, holding the latest step: those made while it travelled are passed over."""
        loop = asyncio.get_running_loop()
        latest: list[tuple[int, int]] = []
        stepped = asyncio.Event()

        def on_step(step: int, total: int) -> None:  # on the model's thread
            latest[:] = [(step, total)]
            with suppress(RuntimeError):  # the loop has closed: the run is over
                loop.call_soon_threadsafe(stepped.set)

        async def tell() -> None:
            warned = False
            while True:
                await stepped.wait()
                stepped.clear()
                try:
                    await self.stream_queue.put_many.aio(
                        [("step", latest[-1])],
                        partition=partition,
                        partition_ttl=self.plan.stream_ttl_s,
                    )
                except Exception as exc:  # progress is extra: the run goes on without it
                    if not warned:  # once a run, not at every step
                        logger.warning("%s: could not tell a step: %r", self.plan.name, exc)
                        warned = True

        telling = asyncio.create_task(tell())
        try:
            return await self.worker.run(
                request, time_limit_s=self.plan.run_timeout, on_step=on_step
            )
        finally:
            telling.cancel()
            with suppress(asyncio.CancelledError):
                await telling

    @modal.method()
    async def stream_into(self, request: RequestModel, partition: str) -> int:
        """Serve a streamed request into `partition` of the stream Queue, which the adapter
        reads: ("chunk", c)... then ("end", n) or ("error", e). Spawned, not a generator: a
        generator's call cannot be cancelled (closing `remote_gen` only closes it locally),
        while cancelling this call cancels this task, which raises the worker's stop flag."""
        chunks = self.worker.stream(request, time_limit_s=self.plan.run_timeout)
        ready: list[tuple[str, Any]] = []
        more = asyncio.Event()

        async def collect() -> None:
            try:
                async for chunk in chunks:
                    ready.append(("chunk", chunk))
                    more.set()
                ready.append(("end", None))
            except Exception as exc:  # the tree's errors: the worker translated them
                ready.append(("error", exc))
            more.set()

        collecting = asyncio.create_task(collect())
        sent = 0
        try:
            while True:
                await more.wait()
                more.clear()
                # Everything made while the last write travelled goes in one write.
                batch, ready[:] = list(ready), []
                if not batch:
                    continue
                await self.stream_queue.put_many.aio(
                    batch, partition=partition, partition_ttl=self.plan.stream_ttl_s
                )
                sent += len(batch)
                if batch[-1][0] != "chunk":
                    return sent
        finally:
            # Cancelled (the client left): cancelling the reader closes the worker's stream,
            # whose stop flag the generation sees at its next step.
            collecting.cancel()
            with suppress(asyncio.CancelledError):
                await collecting

    @modal.exit()
    def release(self) -> None:
        self.worker.close()


class SnapshotGpuModel(GpuModel):
    @modal.enter(snap=True)
    def load_before_snapshot(self) -> None:
        self._before_snapshot()

    @modal.enter(snap=False)
    def load_after_restore(self) -> None:
        self._after_restore()


class PlainGpuModel(GpuModel):
    @modal.enter()
    def load(self) -> None:
        self._before_snapshot()
        self._after_restore()


def define_gpu_classes(
    app: modal.App,
    plan: AppPlan,
    *,
    module: str,
    image: modal.Image,
    volume: modal.Volume,
    compile_cache: modal.Volume,
    stream_queue: Any,
    failed_marks: Any = None,
    pipelines: Mapping[Pipeline, PipelineRunner] = PIPELINES,
    commit_compile_cache: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One Modal class per planned model, named as the plan says, for `module`'s globals: the
    one place a GPU class is defined. Its options are the plan's, all of them; `volume` (the
    weights) is mounted read-only, `compile_cache` read-write and committed once the model is
    ready (`commit_compile_cache`, by default that Volume's commit); `stream_queue` is the
    Queue named `plan.stream_queue`, `failed_marks` the Dict named `plan.failed_marks` (None: no
    marks kept); `pipelines` is the glue registry its worker runs (tests
    pass their own).

    Modal finds a class in a container by importing `module` and looking the name up there, so
    the caller binds each returned class as a module global of that name.
    """
    classes: dict[str, Any] = {}
    volumes: dict[str | PurePosixPath, modal.Volume | modal.CloudBucketMount] = {
        MODELS_MOUNT: volume.with_mount_options(read_only=True),
        COMPILE_CACHE_MOUNT: compile_cache,
    }
    commit = commit_compile_cache or volume_committer(compile_cache)
    for class_plan in plan.classes:
        base = PlainGpuModel if class_plan.snapshot == "off" else SnapshotGpuModel
        body = {
            "plan": class_plan,
            "settings": plan.gpu_settings,
            "pipelines": pipelines,
            "stream_queue": stream_queue,
            "failed_marks": failed_marks,
            "failed_marks_name": plan.failed_marks,
            "compile_cache_commit": staticmethod(commit),
            "__module__": module,
            "__qualname__": class_plan.name,
        }
        user_cls = type(class_plan.name, (base,), body)
        concurrent = modal.concurrent(**class_plan.concurrency_options())(user_cls)
        classes[class_plan.name] = app.cls(
            image=image, volumes=volumes, **plan.gpu_class_options(class_plan)
        )(concurrent)
        setattr(user_cls, "modal_cls", classes[class_plan.name])  # noqa: B010 (a built type)
    return classes


def create_web_app(models: list[ServedModel], classes: ModalClasses, settings: Settings) -> FastAPI:
    """The adapter as served by the Modal app's web function: the Modal backend over `classes`.

    `settings` are read by the caller (modal_app.py) from the web function's environment: the
    limits the deploy set there, AUTH_TOKEN from the auth Secret.
    """
    from adapter.app import create_app
    from adapter.backends.modal import ModalBackend
    from contract.errors import ConfigError

    if not settings.auth_token:
        # A public *.modal.run URL with no token would run billed GPUs for anyone.
        raise ConfigError(
            "AUTH_TOKEN is empty in the auth Secret: the deployed adapter refuses to serve "
            "without a bearer token"
        )
    return create_app(settings, models, ModalBackend(settings, models, classes))
