"""The backend interface: load models, report their state, run validated requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from contract.aimodels import ServedModel
from contract.schemas import RequestModel
from functions.cancel import OnStep


class ModelState(StrEnum):
    COLD = "COLD"  # not loaded; loads on its first request (warm: false)
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"


class Backend(Protocol):
    def check(self, models: list[ServedModel]) -> None:
        """Raise ConfigError for a model this backend cannot serve (called before start)."""

    async def start(self) -> None:
        """Begin loading warm models; returns at once, loading goes on in the background."""

    def state(self, model: ServedModel) -> ModelState: ...

    async def run(
        self, model: ServedModel, request: RequestModel, on_step: OnStep | None = None
    ) -> BaseModel:
        """Serve one request; raises adapter.errors types only. `on_step(step, total)` hears
        of the pipeline's denoising steps where the backend can tell (the local one)."""

    def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        """Serve one streaming request (LLM `stream: true`), yielding each chunk as it comes.

        Closing the iterator early (the client went away) must stop the work.
        """

    async def close(self) -> None: ...
