"""The runner service: model routing, capacity and health over one backend.

Routes hand it validated request models; it picks the model, checks limits, holds a capacity
slot and lets the backend run the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from adapter.backends.base import Backend, ModelState, RunHooks
from adapter.capacity import CapacityLimiter
from adapter.metrics import RequestRecord, RunnerMetrics
from adapter.pipelines import glue_for
from adapter.settings import Settings
from adapter.web.auth import accepted_tokens
from contract.aimodels import ServedModel
from contract.errors import UnknownModelError
from contract.pipelines import Pipeline, PipelineSpec, requested_model_id
from contract.schemas import HealthStatus, RequestModel


class RunnerService:
    def __init__(self, settings: Settings, models: list[ServedModel], backend: Backend) -> None:
        self.settings = settings
        self.models = models
        self.backend = backend
        self.tokens = accepted_tokens(
            settings.auth_token, tuple(t for m in models for t in m.tokens)
        )
        self.limiters = {
            model.key: CapacityLimiter(
                model.key,
                max_in_flight=model.max_in_flight,
                max_queue=model.max_queue,
                queue_timeout_s=settings.queue_timeout_s,
                retry_after_s=settings.retry_after_s,
            )
            for model in models
        }
        self.metrics = RunnerMetrics()

    @property
    def primary(self) -> ServedModel:
        """The model named by /version and /hardware/*, which report one (pipeline, model)."""
        return next((m for m in self.models if m.runner.default), self.models[0])

    def served_summary(self) -> str:
        by_pipeline: dict[Pipeline, list[str]] = {}
        for model in self.models:
            by_pipeline.setdefault(model.pipeline, []).append(model.model_id)
        return "; ".join(f"{p.value}: {', '.join(ids)}" for p, ids in by_pipeline.items())

    def resolve(self, pipeline: Pipeline, model_id: str) -> ServedModel:
        """The model a request is for; an empty model_id means the pipeline's default."""
        candidates = [m for m in self.models if m.pipeline == pipeline]
        if not candidates:
            raise UnknownModelError(
                f"Pipeline {pipeline.value} is not served here. Served: {self.served_summary()}."
            )
        if model_id:
            for model in candidates:
                if model.model_id == model_id:
                    return model
            raise UnknownModelError(
                f"Model {model_id} is not served for {pipeline.value}. "
                f"Served: {self.served_summary()}."
            )
        defaults = [m for m in candidates if m.runner.default]
        if len(candidates) == 1 or defaults:
            return defaults[0] if defaults else candidates[0]
        raise UnknownModelError(
            f"Several models serve {pipeline.value} and none is the default: name one in "
            f"model_id ({', '.join(m.model_id for m in candidates)})."
        )

    @asynccontextmanager
    async def _admitted(
        self, spec: PipelineSpec, request: RequestModel, hooks: RunHooks | None = None
    ) -> AsyncIterator[tuple[ServedModel, RequestModel, RequestRecord]]:
        """Route, check and queue a request; inside, it holds a slot and its work is timed."""
        with self.metrics.request(spec.pipeline) as record:
            model = self.resolve(spec.pipeline, requested_model_id(spec, request))
            record.model = model.model_id
            glue = glue_for(spec.pipeline)
            limiter = self.limiters[model.key]
            # A full model refuses before decoding uploads, so a burst costs it no work.
            limiter.refuse_if_full()
            # Checked (and uploads decoded) before a slot is taken: bad input costs no capacity.
            prepared = await glue.prepare(request, self.settings.limits)
            record.count_units(prepared.request, prepared.facts)
            record.enter_queue()
            async with limiter.slot():
                record.leave_queue()
                if hooks is not None and hooks.on_admitted is not None:
                    hooks.on_admitted()
                with record.running():
                    yield model, prepared.request, record

    async def handle(
        self, spec: PipelineSpec, request: RequestModel, hooks: RunHooks | None = None
    ) -> BaseModel:
        """Serve one request; `hooks` are a job's (its progress, its remote call)."""
        async with self._admitted(spec, request, hooks) as (model, prepared, _):
            return await self.backend.run(model, prepared, hooks)

    async def stream(self, spec: PipelineSpec, request: RequestModel) -> AsyncIterator[BaseModel]:
        """Like `handle`, chunk by chunk; the slot is held until the stream ends or is closed
        (the client went away), which also stops the backend's work."""
        async with self._admitted(spec, request) as (model, prepared, record):
            chunks = self.backend.stream(model, prepared)
            try:
                async for chunk in chunks:
                    # With its first chunk the answer starts (200): go-livepeer has debited the
                    # request by then, however the stream ends.
                    record.debited = True
                    yield chunk
            finally:
                # Closing is what tells the backend to stop (an async generator's aclose).
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()

    def health(self) -> HealthStatus:
        """ERROR if a model failed to load, LOADING while one loads, IDLE if none is loaded yet
        (all cold), else OK. go-livepeer counts LOADING and IDLE as ready and gives up on ERROR.
        """
        states = {self.backend.state(model) for model in self.models}
        if ModelState.FAILED in states:
            return HealthStatus.ERROR
        if ModelState.LOADING in states:
            return HealthStatus.LOADING
        if states == {ModelState.COLD}:
            return HealthStatus.IDLE
        return HealthStatus.OK
