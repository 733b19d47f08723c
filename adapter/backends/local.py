"""The local in-process backend: runs `functions/` pipelines on this machine's GPU or CPU.

Each model gets one worker (adapter/worker.py), which loads and runs it on its own thread,
never on the event loop, so `/health` and other requests answer while a model loads or
generates. This backend adds the policy: which models load at start, when a load is tried
again, how long a request waits for one.

At start each model's weights are checked where the configuration says (a file check, no
load): a missing one is FAILED at once, so /health says ERROR before any request fails.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping

from pydantic import BaseModel

from adapter.backends.base import ModelState, RunHooks
from adapter.pipelines import PIPELINES
from adapter.pipelines.base import PipelineRunner
from adapter.settings import Settings
from adapter.worker import ModelWorker
from contract.aimodels import ServedModel
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from contract.schemas import RequestModel


class LocalBackend:
    def __init__(
        self,
        settings: Settings,
        models: list[ServedModel],
        pipelines: Mapping[Pipeline, PipelineRunner] = PIPELINES,
    ) -> None:
        """`pipelines` is the glue registry the models run with (tests pass their own)."""
        self.settings = settings
        self.pipelines = pipelines
        # A model whose pipeline has no glue gets no worker; `check` refuses it before start.
        self._workers = {
            model.key: ModelWorker(model, settings, pipelines[model.pipeline])
            for model in models
            if model.pipeline in pipelines
        }
        # Warm models load one after another: several loads at once only multiply peak memory.
        self._load_turn = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------

    def check(self, models: list[ServedModel]) -> None:
        for model in models:
            if model.pipeline not in self.pipelines:
                implemented = ", ".join(sorted(p.value for p in self.pipelines))
                raise ConfigError(
                    f"{model.key}: field 'pipeline': {model.pipeline.value!r} has no local "
                    f"implementation yet (implemented: {implemented})"
                )
            self.pipelines[model.pipeline].check_model(model)

    async def start(self) -> None:
        for worker in self._workers.values():
            worker.check_weights()
        for worker in self._workers.values():
            if worker.model.warm:
                worker.start_load(self._load_turn)

    async def close(self) -> None:
        for worker in self._workers.values():
            worker.close()

    def state(self, model: ServedModel) -> ModelState:
        return self._workers[model.key].state

    # --- serving -----------------------------------------------------------------------

    async def _ready(self, model: ServedModel) -> ModelWorker:
        worker = self._workers[model.key]
        # A cold model loads on its first request; later ones wait for the same load. Its
        # failed load (weights not there yet, a transient out-of-memory) is tried again by its
        # next request; a warm one stays ERROR for the operator to see.
        if worker.state is ModelState.COLD or (
            worker.state is ModelState.FAILED and not model.warm
        ):
            worker.start_load()
        await worker.wait_loaded(self.settings.model_load_wait_s)
        return worker

    async def run(
        self, model: ServedModel, request: RequestModel, hooks: RunHooks | None = None
    ) -> BaseModel:
        worker = await self._ready(model)
        return await worker.run(request, on_step=hooks.on_step if hooks else None)

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        worker = await self._ready(model)
        chunks = worker.stream(request)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # closing is what raises the worker's stop flag
