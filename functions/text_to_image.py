"""Text-to-image with diffusers: Stable Diffusion 1.5 and SDXL families (Turbo, Lightning).

Seeds follow Livepeer's runner: the given seed, else a random one in [0, 2**32 - 1]; image i of
a request uses seed + i, so any image can be reproduced alone. Each image's noise comes from its
own CPU generator, so a seed gives the same image on CPU and GPU and in or out of a batch.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from contract.model_families import is_lightning, is_turbo, lightning_steps
from functions.cancel import stop_between_steps
from functions.inputs import MAX_SEED, check_output_size, check_seed, check_text, inference_mode
from functions.loading import has_fp16_variant

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from functions.safety import SafetyChecker
    from functions.speed.fast_path import FastPathOptions

DEFAULT_STEPS = 50


def check_inputs(
    *,
    prompt: str,
    negative_prompt: str = "",
    width: int,
    height: int,
    num_images: int = 1,
    seed: int | None = None,
) -> None:
    """Refuse arguments `TextToImage.generate` cannot take (InputError, naming the field).

    Plain Python: the adapter calls it before a request takes any capacity. What only the
    loaded model knows (how many '|'-separated prompts it takes) is checked by `generate`.
    """
    # The runner's own words for an empty prompt.
    if not prompt.strip():
        raise InputError("Prompt must be provided.")
    check_text("prompt", prompt)
    check_text("negative_prompt", negative_prompt)
    check_output_size(width, height)
    if num_images < 1:
        raise InputError(f"num_images_per_prompt must be at least 1, got {num_images}.")
    check_seed(seed, MAX_SEED - num_images)


@dataclass(frozen=True)
class ModelProfile:
    """Per-model settings the runner hard-codes by model family; `None` leaves the request's."""

    guidance_scale: float | None = None
    num_inference_steps: int | None = None
    trailing_timesteps: bool = False


def profile_for(model_id: str) -> ModelProfile:
    """The family defaults the runner applies, recognised from the model id.

    Turbo and Lightning models are distilled without classifier-free guidance (guidance 0);
    Lightning checkpoints are trained for a fixed step count with trailing timesteps.
    """
    if is_lightning(model_id):
        return ModelProfile(
            guidance_scale=0.0,
            num_inference_steps=lightning_steps(model_id),
            trailing_timesteps=True,
        )
    if is_turbo(model_id):
        return ModelProfile(guidance_scale=0.0)
    return ModelProfile()


def prompt_slots(pipe: Any) -> int:
    """How many prompts a pipeline takes: SDXL a second for its second text encoder, SD3 a third."""
    parameters = inspect.signature(pipe.__call__).parameters
    return 1 + sum(f"prompt_{n}" in parameters for n in (2, 3))


def split_prompt(name: str, text: str, slots: int) -> dict[str, str]:
    """The pipeline arguments for a prompt whose parts, separated by '|', feed each encoder."""
    parts = [part.strip() for part in text.split("|")] if text else []
    if len(parts) > slots:
        raise InputError(
            f"{name} has {len(parts)} parts separated by '|' but this model takes at most {slots}."
        )
    names = [name] + [f"{name}_{n}" for n in (2, 3)]
    return {names[i]: part for i, part in enumerate(parts) if part}


@dataclass
class GeneratedImages:
    images: list[Image.Image]
    seeds: list[int]
    nsfw: list[bool]


class TextToImage:
    fast_path: FastPathOptions | None = None  # set by use_fast_path

    def __init__(
        self,
        pipe: Any,
        profile: ModelProfile = ModelProfile(),
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        self.pipe = pipe
        self.profile = profile
        self.safety_checker = safety_checker
        self._prompt_slots = prompt_slots(pipe)

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        profile: ModelProfile = ModelProfile(),
        safety_checker: SafetyChecker | None = None,
    ) -> TextToImage:
        import torch
        from diffusers import EulerDiscreteScheduler

        kwargs: dict[str, Any] = {"dtype": dtype}
        if dtype == torch.float16 and has_fp16_variant(folder):
            kwargs["variant"] = "fp16"
        if "safety_checker" in _model_index(folder):
            # A bundled checker would run inside every call and blank flagged images; ours only
            # flags them, and runs only when asked.
            kwargs["safety_checker"] = None
            kwargs["requires_safety_checker"] = False
        pipe = pipeline_class(folder).from_pretrained(folder, **kwargs)
        if profile.trailing_timesteps:
            pipe.scheduler = EulerDiscreteScheduler.from_config(
                pipe.scheduler.config, timestep_spacing="trailing"
            )
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), profile, safety_checker)

    def to(self, device: torch.device) -> TextToImage:
        """Move the pipeline (and safety checker) to `device`, e.g. the GPU after a CPU load."""
        self.pipe.to(device)
        if self.safety_checker is not None:
            self.safety_checker.to(device)
        return self

    def _split_prompt(self, name: str, text: str) -> dict[str, str]:
        return split_prompt(name, text, self._prompt_slots)

    @inference_mode
    def generate(
        self,
        *,
        prompt: str,
        height: int,
        width: int,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = 7.5,
        negative_prompt: str = "",
        num_images: int = 1,
        seed: int | None = None,
        safety_check: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GeneratedImages:
        """Images for arguments `check_inputs` accepted."""
        import torch

        from functions.speed.fast_path import images_from_tensor

        # 1. Apply the model family's fixed settings; steps < 1 mean the default, as in the runner.
        steps = self.profile.num_inference_steps or (
            num_inference_steps if num_inference_steps >= 1 else DEFAULT_STEPS
        )
        guidance = (
            guidance_scale if self.profile.guidance_scale is None else self.profile.guidance_scale
        )
        prompts = self._split_prompt("prompt", prompt)
        prompts |= self._split_prompt("negative_prompt", negative_prompt)

        # 2. One generator per image: image i is reproducible alone with seed + i.
        base_seed = random.randint(0, 2**32 - 1) if seed is None else seed
        seeds = [base_seed + i for i in range(num_images)]
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

        # 3. Denoise and decode; the fast path rounds pixels to uint8 on the device.
        on_device = self.fast_path is not None and self.fast_path.uint8_on_device
        output = self.pipe(
            **prompts,
            height=height,
            width=width,
            num_inference_steps=steps,
            guidance_scale=guidance,
            num_images_per_prompt=num_images,
            generator=generators,
            output_type="pt" if on_device else "pil",
            callback_on_step_end=stop_between_steps(should_stop),
        )
        images: list[Image.Image] = (
            images_from_tensor(output.images) if on_device else output.images
        )

        # 4. Flag, never alter, what the safety checker finds.
        if safety_check and self.safety_checker is not None:
            nsfw = self.safety_checker.flags(images)
        else:
            nsfw = [False] * len(images)
        return GeneratedImages(images=images, seeds=seeds, nsfw=nsfw)

    def use_fast_path(self, options: FastPathOptions) -> list[str]:
        """Serve with the fast path (functions.speed.fast_path) from now on; call once the pipeline
        is on its final device. Returns what was applied."""
        from functions.speed.fast_path import apply_fast_path

        self.fast_path = options
        return apply_fast_path(self.pipe, options)


# Text-to-image pipeline classes loaded directly when a folder names one: AutoPipeline imports
# every pipeline family of diffusers first, 1.2 s more of each cold start on this CPU.
_DIRECT_CLASSES = frozenset({"StableDiffusionPipeline", "StableDiffusionXLPipeline"})


def pipeline_class(folder: Path) -> Any:
    """The class that loads `folder` for text-to-image: the one it names, if common, else
    diffusers' AutoPipelineForText2Image (which finds the text-to-image class of its family)."""
    name = _model_index(folder).get("_class_name")
    if name in _DIRECT_CLASSES:
        import diffusers

        return getattr(diffusers, name)
    from diffusers import AutoPipelineForText2Image

    return AutoPipelineForText2Image


def _model_index(folder: Path) -> dict[str, Any]:
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{folder} has no model_index.json: not a diffusers pipeline")
    return json.loads(index.read_text(encoding="utf-8"))
