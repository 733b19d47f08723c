"""Image-to-image with diffusers: SD 1.5 and SDXL img2img (Turbo, Lightning) and InstructPix2Pix.

The output has the input's size, rounded down to the VAE's multiple (8). Seeds follow the
runner as in `functions.text_to_image`: image i of a request uses seed + i, from its own CPU
generator.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from contract.errors import InputError
from functions.cancel import stop_between_steps
from functions.inputs import MAX_SEED, check_image_size, check_seed, check_text, inference_mode
from functions.loading import diffusers_load_kwargs, model_index
from functions.text_to_image import GeneratedImages, ModelProfile, prompt_slots, split_prompt

if TYPE_CHECKING:
    import torch

    from functions.safety import SafetyChecker


def check_inputs(
    *,
    prompt: str,
    negative_prompt: str = "",
    image_size: tuple[int, int],
    strength: float = 0.8,
    num_images: int = 1,
    seed: int | None = None,
) -> None:
    """Refuse arguments `ImageToImage.generate` cannot take (InputError, naming the field).

    `image_size` is the input image's (width, height): the output's size, rounded down to 8.
    Plain Python: the adapter calls it before a request takes any capacity. The runner accepts
    an empty prompt here: the input image alone then guides.
    """
    check_text("prompt", prompt)
    check_text("negative_prompt", negative_prompt)
    check_image_size(image_size)
    if not 0.0 <= strength <= 1.0:
        raise InputError(f"strength must be between 0 and 1, got {strength}.")
    if num_images < 1:
        raise InputError(f"num_images_per_prompt must be at least 1, got {num_images}.")
    check_seed(seed, MAX_SEED - num_images)


class ImageToImage:
    def __init__(
        self,
        pipe: Any,
        profile: ModelProfile | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        self.pipe = pipe
        self.profile = profile or ModelProfile()
        self.safety_checker = safety_checker
        parameters = inspect.signature(pipe.__call__).parameters
        # InstructPix2Pix follows an instruction with no strength; it weighs the input image
        # by image_guidance_scale instead.
        self.instruct = "image_guidance_scale" in parameters
        self.default_steps: int = parameters["num_inference_steps"].default
        self._prompt_slots = prompt_slots(pipe)

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        profile: ModelProfile | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> ImageToImage:
        from diffusers import (
            AutoPipelineForImage2Image,
            DiffusionPipeline,
            EulerAncestralDiscreteScheduler,
            EulerDiscreteScheduler,
        )

        profile = profile or ModelProfile()
        kwargs = diffusers_load_kwargs(folder, dtype)
        if "InstructPix2Pix" in str(model_index(folder).get("_class_name", "")):
            pipe = DiffusionPipeline.from_pretrained(folder, **kwargs)
            # The sampler InstructPix2Pix is published with, and the runner uses.
            pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        else:
            # A text-to-image folder (SD 1.5, SDXL, ...) loads as its img2img pipeline.
            pipe = AutoPipelineForImage2Image.from_pretrained(folder, **kwargs)
        if profile.trailing_timesteps:
            pipe.scheduler = EulerDiscreteScheduler.from_config(
                pipe.scheduler.config, timestep_spacing="trailing"
            )
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), profile, safety_checker)

    @inference_mode
    def generate(
        self,
        *,
        prompt: str,
        image: Image.Image,
        strength: float = 0.8,
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        negative_prompt: str = "",
        num_inference_steps: int = 100,
        num_images: int = 1,
        seed: int | None = None,
        safety_check: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GeneratedImages:
        """Images for arguments `check_inputs` accepted."""
        import torch

        # 1. The output's size: the input's, rounded down to the VAE's multiple (a model whose
        # multiple is over check_inputs' minimum size refuses smaller images here).
        multiple = int(self.pipe.vae_scale_factor)
        width, height = image.width - image.width % multiple, image.height - image.height % multiple
        if width < multiple or height < multiple:
            raise InputError(
                f"The image must be at least {multiple}x{multiple} pixels for this model, got "
                f"{image.width}x{image.height}."
            )

        # 2. Apply the model family's fixed settings; steps < 1 mean the pipeline's default.
        steps = self.profile.num_inference_steps or (
            num_inference_steps if num_inference_steps >= 1 else self.default_steps
        )
        guidance = (
            guidance_scale if self.profile.guidance_scale is None else self.profile.guidance_scale
        )
        prompts = split_prompt("prompt", prompt, self._prompt_slots)
        prompts |= split_prompt("negative_prompt", negative_prompt, self._prompt_slots)
        # The runner accepts an empty prompt here: the input image alone then guides.
        prompts.setdefault("prompt", "")
        if (width, height) != image.size:
            image = image.resize((width, height), Image.Resampling.LANCZOS)

        # 3. One generator per image: image i is reproducible alone with seed + i.
        base_seed = random.randint(0, 2**32 - 1) if seed is None else seed
        seeds = [base_seed + i for i in range(num_images)]
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

        # 4. Denoise and decode. The batch is spelled out (one prompt and image per output)
        # rather than num_images_per_prompt, which InstructPix2Pix deprecates for one image.
        kwargs: dict[str, Any] = {name: [text] * num_images for name, text in prompts.items()} | {
            "image": [image] * num_images,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "generator": generators,
            "output_type": "pil",
            "callback_on_step_end": stop_between_steps(should_stop),
        }
        if self.instruct:
            kwargs["image_guidance_scale"] = image_guidance_scale
        else:
            # img2img runs int(steps * strength) steps: keep at least one, as the runner does
            # for Turbo, rather than fail on a low strength.
            kwargs["strength"] = max(strength, 1.0 / steps)
        images: list[Image.Image] = self.pipe(**kwargs).images

        # 5. Flag, never alter, what the safety checker finds.
        if safety_check and self.safety_checker is not None:
            nsfw = self.safety_checker.flags(images)
        else:
            nsfw = [False] * len(images)
        return GeneratedImages(images=images, seeds=seeds, nsfw=nsfw)
