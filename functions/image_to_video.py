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
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import raise_if_asked, stop_between_steps, stop_inside
from functions.inputs import check_image_size, check_output_size, check_seed, inference_mode
from functions.loading import load_pipeline_of_class

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from functions.safety import SafetyChecker

# Memory the decode of one frame takes per output pixel, for SVD-XT's VAE in float16: going
# from 4 to 8 frames per chunk at 576x1024 grew the reserved memory by 10.2 GiB on an H100
# (measured 2026-11-22), 2.55 GiB a frame, 4640 bytes a pixel; rounded up.
DECODE_BYTES_PER_PIXEL_FP16 = 4700
# Width of the first block of SVD's VAE decoder, whose full-resolution activations dominate.
REFERENCE_DECODER_WIDTH = 128
# Share of the free memory the decode may plan to use: the allocator fragments, and other
# models on the same device may be working.
DECODE_MEMORY_SHARE = 0.75
# When the free memory cannot be read: the runner's fixed choice.
FALLBACK_DECODE_CHUNK_SIZE = 4


def check_inputs(
    *,
    image_size: tuple[int, int],
    width: int = 1024,
    height: int = 576,
    fps: int = 6,
    motion_bucket_id: int = 127,
    noise_aug_strength: float = 0.02,
    seed: int | None = None,
) -> None:
    """Refuse arguments `ImageToVideo.generate` cannot take (InputError, naming the field).

    `image_size` is the input image's (width, height); the pipeline resizes it to the video's.
    Plain Python: the adapter calls it before a request takes any capacity.
    """
    check_image_size(image_size)
    check_output_size(width, height)
    if fps < 1:
        raise InputError(f"fps must be at least 1, got {fps}.")
    if motion_bucket_id < 0:
        raise InputError(f"motion_bucket_id must not be negative, got {motion_bucket_id}.")
    if noise_aug_strength < 0:
        raise InputError(f"noise_aug_strength must not be negative, got {noise_aug_strength}.")
    check_seed(seed)


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
    import torch

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
    import torch

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

    @inference_mode
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
        """The video for arguments `check_inputs` accepted; stops within one denoising step or
        one decode chunk once `should_stop()` is true (raising GenerationCancelled)."""
        import torch

        # 1. The model's fixed settings; steps < 1 mean the pipeline's default, as in the runner.
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

        # 2. The input is checked, not the frames, as the runner does.
        nsfw = bool(
            safety_check
            and self.safety_checker is not None
            and self.safety_checker.flags([image])[0]
        )

        # 3. One seed, one CPU generator for the whole video; denoise, stopping between steps.
        seed = random.randint(0, 2**32 - 1) if seed is None else seed
        raise_if_asked(should_stop)
        latents = self.pipe(
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
            output_type="latent",
            callback_on_step_end=stop_between_steps(should_stop),
        ).frames

        # 4. Decode, stopping between chunks.
        return GeneratedVideo(frames=self.decode(latents, chunk, should_stop), seed=seed, nsfw=nsfw)

    def decode(
        self, latents: torch.Tensor, chunk: int, should_stop: Callable[[], bool] | None = None
    ) -> list[list[Image.Image]]:
        """Frames of `latents` (videos x frames x channels x height x width), as the pipeline's
        own decode makes them (the same VAE calls on the same chunks), `chunk` frames at a time.

        `should_stop` is checked before each chunk, once the one before is off the device, and
        before each layer of the VAE's decoder (where it is not compiled): a video abandoned
        while it decodes frees the model within one chunk, on a CPU within one layer.
        """
        import torch

        videos = []
        with stop_inside(self.pipe.vae.decoder, should_stop):
            for video in latents:
                pieces = []
                for start in range(0, video.shape[0], chunk):
                    raise_if_asked(should_stop)
                    latent = video[None, start : start + chunk]
                    decoded = self.pipe.decode_latents(latent, latent.shape[1], chunk)
                    # Waits for the device: the next check comes after this chunk's work.
                    pieces.append(decoded.cpu())
                videos.append(torch.cat(pieces, dim=2))
        frames: list[list[Image.Image]] = self.pipe.video_processor.postprocess_video(
            video=torch.cat(videos), output_type="pil"
        )
        return frames
