"""The backend interface: load models, report their state, run validated requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from contract.aimodels import ServedModel
from contract.schemas import RequestModel
from functions.cancel import OnStep


@dataclass
class RunHooks:
    """What a job of the jobs door (adapter/jobs/runner.py) asks of one run besides its answer;
    a backend acts on the hooks it can, and ignores the rest."""

    # Hears of each step: on the model's thread (local backend) or the event loop (Modal's,
    # relayed from the container); the job runner's StepTracker takes either.
    on_step: OnStep | None = None
    # A backend whose run is a remote call (Modal) tells its id once spawned, before waiting...
    on_call: Callable[[str], Awaitable[None]] | None = None
    # ...and waits for that call again, instead of running the request twice, when given it.
    call_id: str | None = None
    # Set before the run is cancelled for a shutdown: a remote call goes on, to be waited for
    # again by the next start (a cancel of the job itself leaves it False: the call stops).
    keep_call: bool = False
    # Called once the run holds its model's capacity slot (before it starts): the job runner
    # counts a claimed job against the slot it is about to take until then.
    on_admitted: Callable[[], None] | None = None


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
        self, model: ServedModel, request: RequestModel, hooks: RunHooks | None = None
    ) -> BaseModel:
        """Serve one request; raises adapter.errors types only. `hooks`: a job's (see
        RunHooks)."""

    def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        """Serve one streaming request (LLM `stream: true`), yielding each chunk as it comes.

        Closing the iterator early (the client went away) must stop the work.
        """

    async def close(self) -> None: ...
