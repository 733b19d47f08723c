"""Text-to-video with diffusers' WanPipeline: Wan 2.1 T2V (1.3B by default, 14B too).

Seeds as the image pipelines do them: the given seed, else a random one in [0, 2**32 - 1], drawn
from its own CPU generator, so a seed gives the same video on CPU and GPU. One video a request.

The frames are denoised and decoded by the pipeline; the caller encodes them (functions/video.py).
Stops between denoising steps, and within the VAE's decode between its layers (a CPU decode of
a long video takes minutes), once `should_stop()` is true.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import raise_if_asked, stop_between_steps, stop_inside
from functions.inputs import MIN_IMAGE_SIDE, check_seed, check_text, inference_mode
from functions.loading import diffusers_load_kwargs, model_index

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from functions.safety import SafetyChecker

# Wan's VAE makes 8 pixels of a latent a side and its transformer patches 2x2 latents: 16 pixels.
SIDE_MULTIPLE = 16
# The VAE keeps the first frame and makes 4 of every later latent frame: 4k+1 frames.
TEMPORAL_FACTOR = 4
MAX_FPS = 60
MAX_GUIDANCE = 50.0
DEFAULT_STEPS = 50
DEFAULT_PRODUCTION_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def check_inputs(
    *,
    prompt: str,
    negative_prompt: str = "",
    width: int,
    height: int,
    num_frames: int,
    fps: int,
    guidance_scale: float,
    seed: int | None = None,
) -> None:
    """Refuse arguments `TextToVideo.generate` cannot take (InputError, naming the field).

    Plain Python: the adapter calls it before a request takes any capacity. The cost limits
    (pixels, frames, steps) are the adapter's (`adapter/limits.py`), not checked here.
    """
    if not prompt.strip():
        raise InputError("Prompt must be provided.")
    check_text("prompt", prompt)
    check_text("negative_prompt", negative_prompt)
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise InputError(
            f"width and height must be at least {MIN_IMAGE_SIDE}, got {width}x{height}."
        )
    if width % SIDE_MULTIPLE or height % SIDE_MULTIPLE:
        raise InputError(
            f"width and height must be multiples of {SIDE_MULTIPLE}, got {width}x{height}."
        )
    if num_frames < 1 or num_frames % TEMPORAL_FACTOR != 1:
        raise InputError(
            f"num_frames must be 4k+1 (1, 5, 9, ..., 81), got {num_frames}: the video's "
            f"VAE makes {TEMPORAL_FACTOR} frames of each latent frame after the first."
        )
    if not 1 <= fps <= MAX_FPS:
        raise InputError(f"fps must be between 1 and {MAX_FPS}, got {fps}.")
    if not math.isfinite(guidance_scale) or not 0 <= guidance_scale <= MAX_GUIDANCE:
        raise InputError(
            f"guidance_scale must be between 0 and {MAX_GUIDANCE:g}, got {guidance_scale}."
        )
    check_seed(seed)


@dataclass
class GeneratedVideo:
    frames: list[Image.Image]
    seed: int
    nsfw: bool


class TextToVideo:
    def __init__(
        self,
        pipe: Any,
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        self.pipe = pipe
        # Forced by the model's entry (runner.num_inference_steps, runner.guidance_scale).
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.safety_checker = safety_checker

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        vae_dtype: torch.dtype | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> TextToVideo:
        """A WanPipeline folder in `dtype`; its VAE in `vae_dtype` (Wan's own code decodes in
        float32: its 3D VAE loses detail in half precision)."""
        from diffusers import AutoencoderKLWan, WanPipeline

        class_name = model_index(folder).get("_class_name")
        if class_name != WanPipeline.__name__:
            raise ValueError(f"{folder} holds a {class_name}; text-to-video serves WanPipeline")
        kwargs = diffusers_load_kwargs(folder, dtype)
        if vae_dtype is not None and vae_dtype != dtype:
            kwargs["vae"] = AutoencoderKLWan.from_pretrained(
                folder, subfolder="vae", dtype=vae_dtype
            )
        pipe = WanPipeline.from_pretrained(folder, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        return cls(
            pipe.to(device),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            safety_checker=safety_checker,
        )

    def to(self, device: torch.device) -> TextToVideo:
        self.pipe.to(device)
        if self.safety_checker is not None:
            self.safety_checker.to(device)
        return self

    @property
    def default_steps(self) -> int:
        default = inspect.signature(self.pipe.__call__).parameters["num_inference_steps"].default
        return int(default) if isinstance(default, int) else DEFAULT_STEPS

    @inference_mode
    def generate(
        self,
        *,
        prompt: str,
        negative_prompt: str = "",
        height: int = 480,
        width: int = 832,
        num_frames: int = 81,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = 5.0,
        seed: int | None = None,
        safety_check: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GeneratedVideo:
        """The video for arguments `check_inputs` accepted; raises GenerationCancelled within
        one step (or one decoder layer) once `should_stop()` is true."""
        import torch

        # 1. The entry's fixed settings; steps below 1 mean the model's default.
        steps = self.num_inference_steps or (
            num_inference_steps if num_inference_steps >= 1 else self.default_steps
        )
        guidance = guidance_scale if self.guidance_scale is None else self.guidance_scale

        # 2. One seed, one CPU generator for the whole video.
        seed = random.randint(0, 2**32 - 1) if seed is None else seed
        raise_if_asked(should_stop)
        with stop_inside(self.pipe.vae.decoder, should_stop):
            output = self.pipe(
                prompt=prompt,
                negative_prompt=negative_prompt,
                height=height,
                width=width,
                num_frames=num_frames,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="pil",
                callback_on_step_end=stop_between_steps(should_stop),
            )
        frames: list[Image.Image] = output.frames[0]

        # 3. Flag, never alter: the first, middle and last frames stand for the video.
        nsfw = False
        if safety_check and self.safety_checker is not None:
            picked = sorted({0, len(frames) // 2, len(frames) - 1})
            nsfw = any(self.safety_checker.flags([frames[i] for i in picked]))
        return GeneratedVideo(frames=frames, seed=seed, nsfw=nsfw)
