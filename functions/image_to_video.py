"""Image-to-video with Stable Video Diffusion (SVD and SVD-XT).

As in the runner, one seed (given, else random in [0, 2**32 - 1]) drives all frames, and the
safety checker looks at the input image: each frame's `nsfw` flag is the input's.

How many frames the VAE decodes at once (`decode_chunk_size`) is chosen from the memory free
when a request starts, see `choose_decode_chunk_size`.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from functions.cancel import stop_between_steps
from functions.loading import load_pipeline_of_class
from functions.safety import SafetyChecker
from functions.text_to_image import MAX_SEED

# Memory the decode of one frame takes per output pixel, for SVD-XT's VAE in float16: going
# from 4 to 8 frames per chunk at 576x1024 grew the reserved memory by 10.2 GiB on an H100
# (GPU-BASELINE.md), 2.55 GiB a frame, 4640 bytes a pixel; rounded up.
DECODE_BYTES_PER_PIXEL_FP16 = 4700
# Width of the first block of SVD's VAE decoder, whose full-resolution activations dominate.
REFERENCE_DECODER_WIDTH = 128
# Share of the free memory the decode may plan to use: the allocator fragments, and other
# models on the same device may be working.
DECODE_MEMORY_SHARE = 0.75
# When the free memory cannot be read: the runner's fixed choice.
FALLBACK_DECODE_CHUNK_SIZE = 4


def choose_decode_chunk_size(
    *,
    num_frames: int,
    height: int,
    width: int,
    dtype: torch.dtype,
    free_bytes: int | None,
    decoder_width: int = REFERENCE_DECODER_WIDTH,
) -> int:
    """As many frames per VAE decode as fit in a share of the free memory, 1 to num_frames.

    More frames per chunk decode more consistently over time (the temporal decoder sees them
    together) and no slower; fewer need less memory.
    """
    if free_bytes is None:
        return min(num_frames, FALLBACK_DECODE_CHUNK_SIZE)
    bytes_per_frame = (
        DECODE_BYTES_PER_PIXEL_FP16
        * height
        * width
        * (torch.finfo(dtype).bits / 16)
        * (decoder_width / REFERENCE_DECODER_WIDTH)
    )
    fitting = int(free_bytes * DECODE_MEMORY_SHARE // bytes_per_frame)
    return max(1, min(num_frames, fitting))


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can use on `device`: the driver's free memory plus what torch's
    cache holds unused (on CUDA), the kernel's MemAvailable (on the CPU); None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def model_num_frames(folder: Path) -> int:
    """The frames per video an SVD pipeline folder makes by default (its UNet's `num_frames`)."""
    config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    return int(config.get("num_frames", 25))


@dataclass
class GeneratedVideo:
    frames: list[list[Image.Image]]
    seed: int
    nsfw: bool


class ImageToVideo:
    def __init__(
        self,
        pipe: Any,
        *,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        decode_chunk_size: int | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> None:
        self.pipe = pipe
        self.num_frames: int = num_frames or int(pipe.unet.config.num_frames)
        self.num_inference_steps = num_inference_steps
        self.default_steps: int = (
            inspect.signature(pipe.__call__).parameters["num_inference_steps"].default
        )
        self.decode_chunk_size = decode_chunk_size
        self.safety_checker = safety_checker

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        device: torch.device,
        dtype: torch.dtype,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        decode_chunk_size: int | None = None,
        safety_checker: SafetyChecker | None = None,
    ) -> ImageToVideo:
        from diffusers import StableVideoDiffusionPipeline

        pipe = load_pipeline_of_class(
            StableVideoDiffusionPipeline, folder, dtype, device, "image-to-video"
        )
        return cls(
            pipe,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            decode_chunk_size=decode_chunk_size,
            safety_checker=safety_checker,
        )

    @torch.inference_mode()
    def generate(
        self,
        *,
        image: Image.Image,
        height: int = 576,
        width: int = 1024,
        fps: int = 6,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
        num_inference_steps: int = 25,
        seed: int | None = None,
        safety_check: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> GeneratedVideo:
        # 1. Check the arguments.
        if height < 8 or width < 8 or height % 8 or width % 8:
            raise ValueError(
                f"height and width must be positive multiples of 8, got {height}x{width}"
            )
        if fps < 1:
            raise ValueError(f"fps must be at least 1, got {fps}")
        if motion_bucket_id < 0:
            raise ValueError(f"motion_bucket_id must not be negative, got {motion_bucket_id}")
        if noise_aug_strength < 0:
            raise ValueError(f"noise_aug_strength must not be negative, got {noise_aug_strength}")
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {seed}")

        # 2. The model's fixed settings; steps < 1 mean the pipeline's default, as in the runner.
        steps = self.num_inference_steps or (
            num_inference_steps if num_inference_steps >= 1 else self.default_steps
        )
        chunk = self.decode_chunk_size or choose_decode_chunk_size(
            num_frames=self.num_frames,
            height=height,
            width=width,
            dtype=self.pipe.vae.dtype,
            free_bytes=free_memory_bytes(self.pipe.device),
            decoder_width=int(self.pipe.vae.config.block_out_channels[0]),
        )

        # 3. The input is checked, not the frames, as the runner does.
        nsfw = bool(
            safety_check
            and self.safety_checker is not None
            and self.safety_checker.flags([image])[0]
        )

        # 4. One seed, one CPU generator for the whole video.
        seed = random.randint(0, 2**32 - 1) if seed is None else seed
        output = self.pipe(
            image,
            height=height,
            width=width,
            num_frames=self.num_frames,
            num_inference_steps=steps,
            fps=fps,
            motion_bucket_id=motion_bucket_id,
            noise_aug_strength=noise_aug_strength,
            decode_chunk_size=chunk,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="pil",
            callback_on_step_end=stop_between_steps(should_stop),
        )
        return GeneratedVideo(frames=output.frames, seed=seed, nsfw=nsfw)
