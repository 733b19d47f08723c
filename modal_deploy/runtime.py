"""What runs inside the Modal app's containers: the GPU class body, the image, the web app.

`modal_app.py` generates one GPU class per (pipeline, model) of the plan from the bases here.
A class runs exactly the code the local backend runs (`PIPELINES[p].load` and `.run`) on the
requests the adapter prepared (uploads already in memory), so both backends answer alike.

Loading is split for Modal's memory snapshots (`runner.modal.snapshot`):
- "cpu" (default): before the snapshot, the heavy imports and, where the glue can move its model
  (`PipelineRunner.movable`), the weights loaded into CPU memory: the expensive part, reading
  GBs from the Volume and building the modules. After each restore only the move to the GPU is
  left. No CUDA call happens before the snapshot (CPU snapshots have no GPU then).
- "gpu": the model loads straight onto the GPU before Modal's GPU snapshot (alpha; see
  README.md, "Cold starts and memory snapshots", for its reliability caveats).
- "off": one load after start.

Methods are `async` on purpose: Modal cancels an async input by cancelling its task, which sets
the stop flag the pipelines check between steps. A cancelled sync input with concurrency on
would make Modal stop the whole container.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import modal
from pydantic import BaseModel

from adapter.backends.local import _ensure_demo_model, _pipeline_errors
from adapter.pipelines import PIPELINES
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import BadRequestError, ModelUnavailableError
from contract.schemas import RequestModel
from modal_deploy.plan import (
    COMPILE_CACHE_DIR,
    IMAGE_PACKAGES,
    LOCAL_PACKAGES,
    MODELS_MOUNT,
    PYTHON_VERSION,
    AppPlan,
    ClassPlan,
)

if TYPE_CHECKING:
    import torch
    from fastapi import FastAPI

    from adapter.backends.modal import ModalClasses

logger = logging.getLogger(__name__)
_END = object()


def build_image() -> modal.Image:
    """The one image of every function: the adapter's pinned dependencies and its packages."""
    return (
        modal.Image.debian_slim(python_version=PYTHON_VERSION)
        .uv_pip_install(*IMAGE_PACKAGES)
        .env(
            {
                "HF_HUB_CACHE": MODELS_MOUNT,
                "HF_HUB_DISABLE_TELEMETRY": "1",
                # Compiled kernels (SFAST) kept on the weights Volume: a new container reloads
                # them instead of compiling for minutes.
                "ADAPTER_COMPILE_CACHE_DIR": COMPILE_CACHE_DIR,
            }
        )
        .add_local_python_source(*LOCAL_PACKAGES)
    )


def load_served_model(
    model: ServedModel, settings: Settings, device: torch.device, dtype: torch.dtype
) -> Any:
    """The glue's handle of `model`, from its folder on the Volume (or built, for the demo)."""
    from functions.loading import resolve_model_path

    if model.runner.demo and model.runner.model_path:
        _ensure_demo_model(model.pipeline, Path(model.runner.model_path))
    folder = resolve_model_path(model.model_id, model.runner.model_path, settings.model_dir)
    return PIPELINES[model.pipeline].load(model, folder, device, dtype, settings)


class GpuModel:
    """The body of a generated GPU class; `plan` is set on each subclass."""

    plan: ClassVar[ClassPlan]

    # --- loading -------------------------------------------------------------------------

    def _before_snapshot(self) -> None:
        import diffusers  # noqa: F401  (imported here so the snapshot holds them)
        import torch
        import transformers  # noqa: F401

        from functions.device import pick_device, pick_dtype

        self._settings = Settings()
        self._handle: Any = None
        self._loaded_on: torch.device | None = None
        self._load_s = 0.0
        model = self.plan.model
        # Containers set ADAPTER_DEVICE=cuda, so this probes nothing before a CPU snapshot.
        preference = self._settings.device
        target = pick_device(preference) if preference == "auto" else torch.device(preference)
        self._dtype = pick_dtype(target, model.runner.torch_dtype)
        if self.plan.snapshot == "gpu":
            self._load(target)
        elif self.plan.snapshot == "cpu" and PIPELINES[model.pipeline].movable:
            self._load(torch.device("cpu"))

    def _after_restore(self) -> None:
        from functions.device import pick_device

        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"gpu-{self.plan.name}")
        device = pick_device(self._settings.device)
        if self._handle is None:
            self._load(device)
        elif self._loaded_on != device:
            started = time.monotonic()
            self._handle = PIPELINES[self.plan.model.pipeline].to_device(self._handle, device)
            self._loaded_on = device
            moved_s = time.monotonic() - started
            logger.info("%s moved to %s in %.1f s", self.plan.name, device, moved_s)
        # Compiling and warming up belong on the final device, after any snapshot.
        model = self.plan.model
        PIPELINES[model.pipeline].optimize(self._handle, model, self._settings)

    def _load(self, device: torch.device) -> None:
        model = self.plan.model
        started = time.monotonic()
        try:
            self._handle = load_served_model(model, self._settings, device, self._dtype)
        except Exception as exc:
            # Raised from enter: Modal fails the container and the waiting inputs get this.
            logger.exception("loading %s failed", model.key)
            raise ModelUnavailableError(f"Model {model.model_id} failed to load: {exc}") from exc
        self._loaded_on = device
        self._load_s = time.monotonic() - started
        logger.info("%s loaded on %s in %.1f s", self.plan.name, device, self._load_s)

    # --- methods -------------------------------------------------------------------------

    @modal.method()
    def check(self) -> dict[str, str]:
        """What this container serves, once loaded: a deployment check that costs no request."""
        import torch

        device = self._loaded_on
        on_cuda = device is not None and device.type == "cuda"
        return {
            "model": self.plan.model.key,
            "class": self.plan.name,
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if on_cuda else "",
            "load_s": f"{self._load_s:.1f}",
        }

    @modal.method()
    async def run(self, request: RequestModel) -> BaseModel:
        model = self.plan.model
        glue = PIPELINES[model.pipeline]
        stop = threading.Event()

        def job() -> BaseModel:
            with _pipeline_errors(model):
                return glue.run(self._handle, request, stop.is_set)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        except asyncio.CancelledError:
            # The call was cancelled: stop the pipeline at its next step.
            stop.set()
            raise

    @modal.method()
    async def stream(self, request: RequestModel) -> AsyncIterator[BaseModel]:
        async for chunk in self.stream_chunks(request):
            yield chunk

    async def stream_chunks(self, request: RequestModel) -> AsyncIterator[BaseModel]:
        """The body of `stream`: the glue's sync generator, stepped on the model's thread.

        Apart from the Modal method because `.local()` cannot run async generator methods.
        """
        model = self.plan.model
        produce = getattr(PIPELINES[model.pipeline], "stream", None)
        if produce is None:
            raise BadRequestError(f"{model.pipeline.value} does not stream.")
        stop = threading.Event()
        chunks = produce(self._handle, request, stop.is_set)

        def next_chunk() -> Any:
            with _pipeline_errors(model):
                return next(chunks, _END)

        loop = asyncio.get_running_loop()
        try:
            while (chunk := await loop.run_in_executor(self._executor, next_chunk)) is not _END:
                yield chunk
        finally:
            stop.set()
            # Closed on the model's thread, after any step still running there.
            with suppress(RuntimeError):
                self._executor.submit(chunks.close)

    @modal.exit()
    def release(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


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
    env: Mapping[str, str],
) -> dict[str, Any]:
    """One Modal class per planned model, named as the plan says, for `module`'s globals.

    Modal finds a class in a container by importing `module` and looking the name up there, so
    the caller binds each returned class as a module global of that name.
    """
    classes = {}
    for class_plan in plan.classes:
        base = PlainGpuModel if class_plan.snapshot == "off" else SnapshotGpuModel
        user_cls = type(
            class_plan.name,
            (base,),
            {"plan": class_plan, "__module__": module, "__qualname__": class_plan.name},
        )
        concurrent = modal.concurrent(max_inputs=class_plan.max_concurrent_inputs)(user_cls)
        classes[class_plan.name] = app.cls(
            image=image,
            volumes={MODELS_MOUNT: volume},
            env={**class_plan.env, **env},
            **class_plan.cls_options(),
        )(concurrent)
    return classes


def create_web_app(models: list[ServedModel], classes: ModalClasses) -> FastAPI:
    """The adapter as served by the Modal app's web function: the Modal backend over `classes`.

    Settings (limits, AUTH_TOKEN from the auth Secret) come from the function's environment.
    """
    from adapter.app import create_app
    from adapter.backends.modal import ModalBackend
    from contract.errors import ConfigError

    settings = Settings(backend="modal")
    if not settings.auth_token:
        # A public *.modal.run URL with no token would run billed GPUs for anyone.
        raise ConfigError(
            "AUTH_TOKEN is empty in the auth Secret: the deployed adapter refuses to serve "
            "without a bearer token"
        )
    return create_app(settings, models, ModalBackend(settings, models, classes))
