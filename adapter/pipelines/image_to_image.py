"""Image-to-image glue: ImageToImageForm -> functions.image_to_image -> ImageResponse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.image_input import checked_image, prepared_image
from adapter.pipelines.text_to_image import load_safety_checker, served_profile
from contract.pipelines import Pipeline
from contract.schemas import ImageResponse, ImageToImageForm, Media, RequestModel
from contract.units import RequestFacts

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

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.image_to_image import check_inputs

        assert isinstance(request, ImageToImageForm)
        # The output has the input's size, so the input is bounded like a generated image.
        image, size = await checked_image(request.image, limits, limit="max_pixels_per_image")
        check_inputs(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            image_size=size,
            strength=request.strength,
            num_images=request.num_images_per_prompt,
            seed=request.seed,
        )
        width, height = size
        return Prepared(
            request.model_copy(update={"image": image}),
            RequestFacts(input_width=width, input_height=height),
        )

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
            folder,
            device=device,
            dtype=dtype,
            profile=served_profile(model),
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
