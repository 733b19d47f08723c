"""Image-to-image glue: ImageToImageForm -> functions.image_to_image -> ImageResponse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, StopCheck
from adapter.pipelines.image_input import prepare_image, prepared_image
from adapter.pipelines.text_to_image import load_safety_checker, served_profile
from contract.errors import BadRequestError
from contract.pipelines import Pipeline
from contract.schemas import ImageResponse, ImageToImageForm, Media, RequestModel

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.text_to_image import GeneratedImages


def image_response(result: GeneratedImages) -> ImageResponse:
    from functions.media import png_data_url

    return ImageResponse(
        images=[
            Media(url=png_data_url(image), seed=seed, nsfw=nsfw)
            for image, seed, nsfw in zip(result.images, result.seeds, result.nsfw, strict=True)
        ]
    )


class ImageToImageRunner(PipelineRunner):
    pipeline = Pipeline.IMAGE_TO_IMAGE

    async def prepare(self, request: RequestModel, limits: Limits) -> RequestModel:
        assert isinstance(request, ImageToImageForm)
        request = await super().prepare(request, limits)
        if not 0.0 <= request.strength <= 1.0:
            raise BadRequestError(f"strength must be between 0 and 1, got {request.strength}.")
        # The output has the input's size, so the input is bounded like a generated image.
        prepared, (width, height) = await prepare_image(
            request,
            limits,
            max_pixels=limits.max_pixels_per_image,
            limit_name="max_pixels_per_image",
        )
        if width < 8 or height < 8:
            raise BadRequestError(f"The image must be at least 8x8 pixels, got {width}x{height}.")
        return prepared

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.stable_diffusion import build_tiny_sd

        build_tiny_sd(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.image_to_image import ImageToImage

        checker = load_safety_checker(model.runner.safety_checker, device, settings)
        return ImageToImage.load(
            folder, device=device, dtype=dtype, profile=served_profile(model),
            safety_checker=checker,
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        assert isinstance(request, ImageToImageForm)
        result = handle.generate(
            prompt=request.prompt,
            image=prepared_image(request.image),
            strength=request.strength,
            guidance_scale=request.guidance_scale,
            image_guidance_scale=request.image_guidance_scale,
            negative_prompt=request.negative_prompt,
            num_inference_steps=request.num_inference_steps,
            num_images=request.num_images_per_prompt,
            seed=request.seed,
            safety_check=request.safety_check,
            should_stop=should_stop,
        )
        return image_response(result)
