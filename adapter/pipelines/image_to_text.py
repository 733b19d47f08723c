"""Image-to-text glue: ImageToTextForm -> functions.image_to_text -> ImageToTextResponse.

The upload is decoded and checked on the adapter (`checked_image`: format, header-declared
pixels against ADAPTER_MAX_INPUT_PIXELS, corrupt files), as for the other image pipelines; a
body over ADAPTER_MAX_REQUEST_BYTES is a 413, which this route declares. The caption's length is
bounded by ADAPTER_MAX_CAPTION_TOKENS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.image_input import checked_image, prepared_image
from contract.pipelines import Pipeline
from contract.schemas import ImageToTextForm, ImageToTextResponse, RequestModel
from contract.units import RequestFacts

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.image_to_text import ImageCaptioner


@dataclass
class LoadedCaptioner:
    captioner: ImageCaptioner


class ImageToTextRunner(PipelineRunner):
    pipeline = Pipeline.IMAGE_TO_TEXT

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.image_to_text import check_inputs

        assert isinstance(request, ImageToTextForm)
        image, size = await checked_image(request.image, limits)
        check_inputs(prompt=request.prompt, image_size=size)
        width, height = size
        return Prepared(
            request.model_copy(update={"image": image}),
            RequestFacts(input_width=width, input_height=height),
        )

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.caption_speech import build_tiny_blip

        build_tiny_blip(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.image_to_text import ImageCaptioner

        return LoadedCaptioner(
            ImageCaptioner.load(
                folder,
                device=device,
                dtype=dtype,
                max_new_tokens=settings.limits.max_caption_tokens,
            )
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        assert isinstance(handle, LoadedCaptioner) and isinstance(request, ImageToTextForm)
        text = handle.captioner.caption(
            prepared_image(request.image), request.prompt, should_stop=should_stop
        )
        return ImageToTextResponse(text=text)
