"""What every pipeline's glue provides: request model -> `functions/` call -> response model.

The same glue runs wherever the model lives: in the adapter's process (local backend) or in a
Modal GPU container. `prepare` runs on the adapter before any capacity is taken, so bad input is
refused before it can cost GPU time; `load` and `run` run where the model is.
"""

from __future__ import annotations

import asyncio
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fastapi import UploadFile
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUploadFile

from adapter.limits import check_request
from contract.errors import BadRequestError
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import RequestModel

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from contract.units import RequestFacts

StopCheck = Callable[[], bool]


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

    async def prepare(self, request: RequestModel, limits: Limits) -> RequestModel:
        """Check a request on the adapter and return it ready to travel to a backend.

        Uploads are read into memory so the request can be pickled (Modal) or resent (HTTP);
        subclasses add their own decoding checks (images, audio) on top.
        """
        check_request(request, limits)
        return await buffer_uploads(request)

    def pricing_facts(self, request: RequestModel) -> RequestFacts:
        """What go-livepeer's unit rule needs beyond the fields of a prepared request: what
        `prepare` measured of its uploads (`with_upload_facts`)."""
        from contract.units import RequestFacts

        return RequestFacts(**request._upload_facts)

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
        if model.optimization_flags:
            from adapter.pipelines.optimization import optimize_pipeline

            optimize_pipeline(handle.pipe, model, settings)

    def build_demo(self, folder: Path) -> None:
        """Save a tiny random-weight model of this pipeline at `folder` (the built-in demo)."""
        from contract.errors import ConfigError

        raise ConfigError(f"{self.pipeline.value} has no built-in demo model")


def with_upload_facts(request: RequestModel, **facts: int) -> RequestModel:
    """The request, noting what was measured of its uploads (see `pricing_facts`)."""
    noted = request.model_copy()
    noted._upload_facts = {**request._upload_facts, **facts}
    return noted


def upload_fields(request: RequestModel) -> dict[str, UploadFile]:

    # Form parsing hands over Starlette's UploadFile; FastAPI's is a subclass of it.
    return {
        name: value
        for name in type(request).model_fields
        if isinstance(value := getattr(request, name), StarletteUploadFile)
    }


async def buffer_uploads(request: RequestModel) -> RequestModel:
    """The request with each upload replaced by an in-memory copy of its bytes.

    The body-size middleware has already bounded how much there is to read.
    """
    uploads = upload_fields(request)
    if not uploads:
        return request
    buffered: dict[str, UploadFile] = {}
    for name, upload in uploads.items():
        await upload.seek(0)
        data = await upload.read()
        buffered[name] = in_memory_upload(data, upload.filename, upload.content_type)
    return request.model_copy(update=buffered)


def in_memory_upload(data: bytes, filename: str | None, content_type: str | None) -> UploadFile:
    from starlette.datastructures import Headers

    headers = Headers({"content-type": content_type}) if content_type else None
    return UploadFile(io.BytesIO(data), size=len(data), filename=filename, headers=headers)


def upload_bytes(upload: UploadFile) -> bytes:
    """The bytes of a buffered upload (see `buffer_uploads`)."""
    file = upload.file
    if not isinstance(file, io.BytesIO):
        raise TypeError("upload was not buffered; call PipelineRunner.prepare first")
    return file.getvalue()


def require_nonempty(upload: UploadFile, field: str) -> bytes:
    data = upload_bytes(upload)
    if not data:
        raise BadRequestError(f"The uploaded {field} file is empty.")
    return data


async def off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """Run CPU-bound checking (decoding an upload) off the event loop."""
    return await asyncio.to_thread(function, *args)
