"""Upscaling with the Stable Diffusion x4 upscaler family: one image, four times wider and higher.

The input is cropped to the VAE's multiple (4 for the x4 upscaler: at most 3 pixels a side) before
upscaling. As in the runner, seed 0 (or none) means a random seed in [0, 2**32 - 1].
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import stop_between_legacy_steps
from functions.inputs import check_image_size, check_seed, check_text, inference_mode
from functions.loading import load_pipeline_of_class
from functions.text_to_image import GeneratedImages, prompt_slots, split_prompt

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from functions.safety import SafetyChecker


def check_inputs(*, prompt: str, image_size: tuple[int, int], seed: int | None = None) -> None:
    """Refuse arguments `Upscale.generate` cannot take (InputError, naming the field).

    `image_size` is the input image's (width, height). Plain Python: the adapter calls it
    before a request takes any capacity.
    """
    check_text("prompt", prompt)
    check_image_size(image_size)
    check_seed(seed)


class Upscale:
    def __init__(
        self,
        pipe: Any,
        *,
        num_inference_steps: int | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        self.pipe = pipe
        self.num_inference_steps = num_inference_steps
        self.safety_checker = safety_checker
        self.default_steps: int = (
            inspect.signature(pipe.__call__).parameters["num_inference_steps"].default
        )
        self._prompt_slots = prompt_slots(pipe)

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        num_inference_steps: int | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> Upscale:
        from diffusers import StableDiffusionUpscalePipeline

        pipe = load_pipeline_of_class(
            StableDiffusionUpscalePipeline, folder, dtype, device, "upscale"
        )
        return cls(pipe, num_inference_steps=num_inference_steps, safety_checker=safety_checker)

    @property
    def scale(self) -> int:
        """How many times wider and higher the output is than the (rounded) input."""
        return int(self.pipe.vae_scale_factor)

    @inference_mode
    def generate(
        self,
        *,
        prompt: str,
        image: Image.Image,
        num_inference_steps: int = 75,
        seed: int | None = None,
        safety_check: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GeneratedImages:
        """The upscaled image for arguments `check_inputs` accepted."""
        import torch

        # 1. The input is cropped to the VAE's multiple (a model whose multiple is over
        # check_inputs' minimum size refuses smaller images here).
        multiple = self.scale
        width, height = image.width - image.width % multiple, image.height - image.height % multiple
        if width < multiple or height < multiple:
            raise InputError(
                f"The image must be at least {multiple}x{multiple} pixels for this model, got "
                f"{image.width}x{image.height}."
            )

        # 2. The model's fixed settings; steps < 1 mean the pipeline's default.
        steps = self.num_inference_steps or (
            num_inference_steps if num_inference_steps >= 1 else self.default_steps
        )
        prompts = split_prompt("prompt", prompt, self._prompt_slots)
        prompts.setdefault("prompt", "")
        if (width, height) != image.size:
            image = image.crop((0, 0, width, height))

        # 3. Seed 0 means random, as in the runner.
        seed = seed or random.randint(0, 2**32 - 1)

        # 4. Denoise at the input's resolution and decode four times larger.
        images: list[Image.Image] = self.pipe(
            **prompts,
            image=image,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="pil",
            callback=stop_between_legacy_steps(should_stop, total=steps),
            callback_steps=1,
        ).images

        # 5. Flag, never alter, what the safety checker finds.
        if safety_check and self.safety_checker is not None:
            nsfw = self.safety_checker.flags(images)
        else:
            nsfw = [False] * len(images)
        return GeneratedImages(images=images, seeds=[seed], nsfw=nsfw)
