"""Upscale glue: UpscaleForm -> functions.upscale -> ImageResponse with one image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.image_input import checked_image, prepared_image
from adapter.pipelines.image_to_image import image_response
from adapter.pipelines.text_to_image import load_safety_checker
from contract.pipelines import Pipeline
from contract.schemas import RequestModel, UpscaleForm
from contract.units import RequestFacts

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel


class UpscaleRunner(PipelineRunner):
    pipeline = Pipeline.UPSCALE

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.upscale import check_inputs

        assert isinstance(request, UpscaleForm)
        # The output has 16 times the input's pixels: the input's bound is the output's.
        image, size = await checked_image(request.image, limits, limit="max_upscale_input_pixels")
        check_inputs(prompt=request.prompt, image_size=size, seed=request.seed)
        width, height = size
        return Prepared(
            request.model_copy(update={"image": image}),
            RequestFacts(input_width=width, input_height=height),
        )

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.image_models import build_tiny_sd_upscaler

        build_tiny_sd_upscaler(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.upscale import Upscale

        return Upscale.load(
            folder,
            device=device,
            dtype=dtype,
            num_inference_steps=model.runner.num_inference_steps,
            safety_checker=load_safety_checker(model.runner.safety_checker, device, settings),
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        assert isinstance(request, UpscaleForm)
        result = handle.generate(
            prompt=request.prompt,
            image=prepared_image(request.image),
            num_inference_steps=request.num_inference_steps,
            seed=request.seed,
            safety_check=request.safety_check,
            should_stop=should_stop,
        )
        return image_response(result)
