"""What every pipeline's glue provides: request model -> `functions/` call -> response model.

The same glue runs wherever the model lives: in the adapter's process (local backend) or in a
Modal GPU container. `prepare` runs on the adapter before any capacity is taken, so bad input is
refused before it can cost GPU time; `load` and `run` run where the model is.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from adapter.limits import check_request
from contract.errors import BadRequestError, InputError
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import RequestModel
from contract.units import RequestFacts

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Prepared:
    """A request checked by `prepare`, ready to travel to a backend, and what go-livepeer's unit
    rule needs beyond its fields: what was measured of its uploads (image size, audio length)."""

    request: RequestModel
    facts: RequestFacts = field(default_factory=RequestFacts)


class PipelineRunner(ABC):
    """Base of each pipeline's glue. Subclasses set `pipeline` and implement load/run."""

    pipeline: ClassVar[Pipeline]
    # Whether a handle loaded on the CPU can be moved to the GPU with `to_device` and then
    # serves as if loaded there. Modal GPU classes then load on the CPU before their memory
    # snapshot, so a restored container only moves the weights (see modal_deploy/runtime.py).
    movable: ClassVar[bool] = False

    @property
    def failure_message(self) -> str:
        """The 500 message when the pipeline fails on a valid request (as the runner words it)."""
        return PIPELINE_SPECS[self.pipeline].failure_message

    async def prepare(self, request: RequestModel, limits: Limits) -> Prepared:
        """Check a request on the adapter, before it takes any capacity, and make it ready to
        travel to a backend: the service's cost limits (`adapter.limits`), then the pipeline's
        own `check`. What its `functions/` module refuses (InputError) is a 400.
        """
        check_request(request, limits)
        try:
            return await self.check(request, limits)
        except InputError as exc:
            raise BadRequestError(str(exc)) from exc

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        """The pipeline's own checks: its uploads decoded and checked, its arguments passed to
        its `functions/` module's `check_inputs`. None where it has no implementation here."""
        return Prepared(request)

    def check_model(self, model: ServedModel) -> None:
        """Refuse at start (ConfigError) an entry this glue cannot load, where its model id
        says so; called by the backends that load models (local, Modal). None by default."""
        return None

    @abstractmethod
    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        """Load the model's weights from `folder`; the returned handle is passed to `run`."""

    @abstractmethod
    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        """Serve one prepared request; `should_stop` turns true when the client has gone."""

    def stream(
        self, handle: Any, request: RequestModel, should_stop: StopCheck
    ) -> Iterator[BaseModel]:
        """Serve one prepared request as a stream of chunks (LLM `stream: true`).

        The caller closes the iterator when its client has gone, and `should_stop` turns true.
        """
        raise BadRequestError(f"{self.pipeline.value} does not stream its responses.")

    def to_device(self, handle: Any, device: torch.device) -> Any:
        """Move a handle loaded on the CPU to `device` (called only when `movable`)."""
        return handle.to(device)

    def optimize(self, handle: Any, model: ServedModel, settings: Settings) -> None:
        """Apply the model's optimization flags to a handle on its final device (compiling
        there); called once after `load` (and `to_device`).

        By default, to the diffusers pipeline at `handle.pipe`, compiled on its first request;
        a pipeline with a warm-up of its own overrides this. The configuration refuses flags on
        pipelines that take none, so other handles never get here with flags.
        """
        if model.flags.sfast or model.flags.deepcache:
            from adapter.pipelines.optimization import optimize_pipeline

            optimize_pipeline(handle.pipe, model, settings)

    def build_demo(self, folder: Path) -> None:
        """Save a tiny random-weight model of this pipeline at `folder` (the built-in demo)."""
        from contract.errors import ConfigError

        raise ConfigError(f"{self.pipeline.value} has no built-in demo model")


def require_nonempty(data: bytes, field: str) -> bytes:
    if not data:
        raise BadRequestError(f"The uploaded {field} file is empty.")
    return data


async def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """Run CPU-bound checking (decoding an upload) off the event loop."""
    return await asyncio.to_thread(function, *args)
