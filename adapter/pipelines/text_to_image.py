"""Text-to-image glue: TextToImageParams -> functions.text_to_image -> ImageResponse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.optimization import optimize_pipeline
from contract.pipelines import Pipeline
from contract.schemas import ImageResponse, Media, RequestModel, TextToImageParams

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.text_to_image import ModelProfile


def fast_path_for(model: ServedModel, device: torch.device) -> Any:
    """The fast-path options for `model` on `device` (None: stock diffusers)."""
    from dataclasses import replace

    from functions.speed.fast_path import default_fast_path

    options = default_fast_path(device) if model.runner.fast_path else None
    if options is not None and model.flags.sfast:
        # A module compiled in place (the SFAST flag) must not have our graph code traced into
        # it; the compiler's own CUDA graphs (mode reduce-overhead) take their place.
        options = replace(options, cuda_graphs=False)
    return options


def load_safety_checker(source: str | None, device: torch.device, settings: Settings) -> Any:
    """The configured safety checker (a folder, or a model id in the HF cache), or None."""
    if not source:
        return None
    from functions.loading import resolve_model_path
    from functions.safety import SafetyChecker

    folder = (
        Path(source)
        if Path(source).is_dir()
        else resolve_model_path(source, None, settings.model_dir)
    )
    return SafetyChecker.load(folder, device)


def served_profile(model: ServedModel) -> ModelProfile:
    """The model family's fixed settings, overridden by the entry's `runner` settings."""
    from functions.text_to_image import ModelProfile, profile_for

    family = profile_for(model.model_id)
    return ModelProfile(
        guidance_scale=(
            family.guidance_scale
            if model.runner.guidance_scale is None
            else float(model.runner.guidance_scale)
        ),
        num_inference_steps=model.runner.num_inference_steps or family.num_inference_steps,
        trailing_timesteps=family.trailing_timesteps,
    )


def warm_up(handle: Any) -> None:
    """One image at the contract's default size, so that size is compiled before requests."""
    defaults = TextToImageParams(prompt="warm-up")
    handle.generate(
        prompt=defaults.prompt,
        height=defaults.height,
        width=defaults.width,
        num_inference_steps=2,
        guidance_scale=defaults.guidance_scale,
        seed=0,
        safety_check=False,
    )


class TextToImageRunner(PipelineRunner):
    pipeline = Pipeline.TEXT_TO_IMAGE
    movable = True

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.text_to_image import check_inputs

        assert isinstance(request, TextToImageParams)
        check_inputs(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=request.width,
            height=request.height,
            num_images=request.num_images_per_prompt,
            seed=request.seed,
        )
        return Prepared(request)

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
        from functions.text_to_image import TextToImage

        profile = served_profile(model)
        checker = load_safety_checker(model.runner.safety_checker, device, settings)
        return TextToImage.load(
            folder, device=device, dtype=dtype, profile=profile, safety_checker=checker
        )

    def optimize(self, handle: Any, model: ServedModel, settings: Settings) -> None:
        # On the final device (after a Modal CPU snapshot's move): the flags, then our fast
        # path, which is chosen by that device (stock diffusers on the CPU).
        optimize_pipeline(handle.pipe, model, settings, warmup=lambda: warm_up(handle))
        options = fast_path_for(model, handle.pipe.device)
        if options is not None:
            handle.use_fast_path(options)

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        from functions.media import png_data_urls

        assert isinstance(request, TextToImageParams)
        result = handle.generate(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            height=request.height,
            width=request.width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            num_images=request.num_images_per_prompt,
            seed=request.seed,
            safety_check=request.safety_check,
            should_stop=should_stop,
        )
        urls = png_data_urls(result.images)
        return ImageResponse(
            images=[
                Media(url=url, seed=seed, nsfw=nsfw)
                for url, seed, nsfw in zip(urls, result.seeds, result.nsfw, strict=True)
            ]
        )
