"""The two paths each diffusion case runs: stock (what Livepeer's runner does) and ours.

Stock: `from_pretrained` in float16, `.to(device)`, an eager call returning Pillow images,
Pillow's default PNG for each data URL (the runner's `image_to_data_url`).
Ours: the project's own code, `functions/` with the fast path and the adapter's glue where it
exists, so the timed work is what a request costs a container.

Both draw each image's noise from a CPU generator seeded alike (the runner seeds a CUDA
generator; a CPU one here lets outputs be compared, and costs well under a millisecond), and
neither runs a safety checker (the runner's costs 17-32 ms per image on an H100).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.constants import PROMPT
from functions.media import pillow_png_data_url, png_data_urls
from functions.speed.fast_path import FastPathOptions, apply_fast_path, images_from_tensor

# The runner's image-to-video settings (its defaults; decode_chunk_size 4 in the runner).
SVD_SETTINGS: dict[str, Any] = {
    "fps": 6,
    "motion_bucket_id": 127,
    "noise_aug_strength": 0.02,
    "decode_chunk_size": 4,
}
UPSCALE_NOISE_LEVEL = 20  # the pipeline's default, as the runner leaves it


@dataclass
class Loaded:
    """A path ready to time: `run(seed)` serves one request and returns its data URLs."""

    run: Callable[[int], list[str]]
    pipe: Any  # kept so the weights stay loaded

    def graph_stats(self) -> dict[str, dict[str, int]]:
        """How each graphed module's calls went (empty for stock)."""
        from functions.speed.cuda_graphs import graphed_calls

        stats = {}
        for name, module in self.pipe.components.items():
            if isinstance(module, torch.nn.Module):
                for method, graphed in graphed_calls(module).items():
                    stats[f"{name}.{method}"] = {
                        "captured": graphed.stats.captured,
                        "replayed": graphed.stats.replayed,
                        "eager": graphed.stats.eager,
                        "refused": len(graphed.stats.refused),
                        "invalidated": graphed.stats.invalidated,
                    }
        return stats


@contextmanager
def torch_defaults() -> Iterator[None]:
    """cuDNN as a fresh process has it: ours turns on cuDNN autotuning process-wide, and the
    stock path, timed in the same process, must not benefit from it."""
    with torch.backends.cudnn.flags(
        enabled=True, benchmark=False, deterministic=False, allow_tf32=True
    ):
        yield


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def _is_lightning(model_id: str) -> bool:
    from functions.text_to_image import profile_for

    return profile_for(model_id).trailing_timesteps


# --- text-to-image (cases a, b) ------------------------------------------------------------


def stock_text_to_image(
    folder: Path, model_id: str, device: torch.device, dtype: torch.dtype, params: dict[str, int]
) -> Loaded:
    from diffusers import AutoPipelineForText2Image, EulerDiscreteScheduler

    pipe = AutoPipelineForText2Image.from_pretrained(folder, dtype=dtype)
    if _is_lightning(model_id):
        pipe.scheduler = EulerDiscreteScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="trailing"
        )
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)

    def run(seed: int) -> list[str]:
        with torch_defaults():
            images = pipe(
                prompt=PROMPT,
                height=params["height"],
                width=params["width"],
                num_inference_steps=params["steps"],
                guidance_scale=0.0,
                generator=_generator(seed),
            ).images
        return [pillow_png_data_url(image) for image in images]

    return Loaded(run, pipe)


def our_text_to_image(
    folder: Path,
    model_id: str,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
    options: FastPathOptions,
) -> Loaded:
    from adapter.pipelines.text_to_image import TextToImageRunner
    from contract.schemas import ImageResponse, TextToImageParams
    from functions.text_to_image import TextToImage, profile_for

    handle = TextToImage.load(folder, device=device, dtype=dtype, profile=profile_for(model_id))
    handle.use_fast_path(options)
    glue = TextToImageRunner()

    def run(seed: int) -> list[str]:
        request = TextToImageParams(
            prompt=PROMPT,
            height=params["height"],
            width=params["width"],
            num_inference_steps=params["steps"],
            guidance_scale=0.0,
            seed=seed,
            safety_check=False,
        )
        response = glue.run(handle, request, lambda: False)
        assert isinstance(response, ImageResponse)
        return [media.url for media in response.images]

    return Loaded(run, handle.pipe)


# --- image-to-video (case c) ---------------------------------------------------------------


def svd_input_image(width: int, height: int) -> Image.Image:
    from bench.images import generated_like

    return Image.fromarray(generated_like(height, width, seed=11))


def _svd_call(pipe: Any, params: dict[str, int], seed: int, output_type: str) -> Any:
    return pipe(
        svd_input_image(params["width"], params["height"]),
        height=params["height"],
        width=params["width"],
        num_frames=params["frames"],
        num_inference_steps=params["steps"],
        generator=_generator(seed),
        output_type=output_type,
        **SVD_SETTINGS,
    ).frames[0]


def _stock_path(
    pipeline_class: Any,
    call: Any,
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
) -> Loaded:
    """The runner's way: fp16 from_pretrained, .to(device), eager, Pillow's PNG per image."""
    pipe = pipeline_class.from_pretrained(folder, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)

    def run(seed: int) -> list[str]:
        with torch_defaults():
            images = call(pipe, params, seed, "pil")
        return [pillow_png_data_url(image) for image in images]

    return Loaded(run, pipe)


def _our_path(
    pipeline_class: Any,
    call: Any,
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
    options: FastPathOptions,
) -> Loaded:
    """The same pipeline with our fast path and our PNG encoder."""
    pipe = pipeline_class.from_pretrained(folder, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    apply_fast_path(pipe, options)

    def run(seed: int) -> list[str]:
        if options.uint8_on_device:
            images = images_from_tensor(call(pipe, params, seed, "pt"))
        else:
            images = call(pipe, params, seed, "pil")
        return png_data_urls(images)

    return Loaded(run, pipe)


def stock_image_to_video(
    folder: Path, device: torch.device, dtype: torch.dtype, params: dict[str, int]
) -> Loaded:
    from diffusers import StableVideoDiffusionPipeline

    return _stock_path(StableVideoDiffusionPipeline, _svd_call, folder, device, dtype, params)


def our_image_to_video(
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
    options: FastPathOptions,
) -> Loaded:
    from diffusers import StableVideoDiffusionPipeline

    return _our_path(
        StableVideoDiffusionPipeline, _svd_call, folder, device, dtype, params, options
    )


# --- upscale (case u) ----------------------------------------------------------------------


def upscale_input_image(size: int) -> Image.Image:
    from bench.images import photo_like

    return Image.fromarray(photo_like(size, size, seed=12))


def _upscale_call(pipe: Any, params: dict[str, int], seed: int, output_type: str) -> Any:
    return pipe(
        prompt=PROMPT,
        image=upscale_input_image(params["input"]),
        num_inference_steps=params["steps"],
        noise_level=UPSCALE_NOISE_LEVEL,
        generator=_generator(seed),
        output_type=output_type,
    ).images


def stock_upscale(
    folder: Path, device: torch.device, dtype: torch.dtype, params: dict[str, int]
) -> Loaded:
    from diffusers import StableDiffusionUpscalePipeline

    return _stock_path(StableDiffusionUpscalePipeline, _upscale_call, folder, device, dtype, params)


def our_upscale(
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
    options: FastPathOptions,
) -> Loaded:
    from diffusers import StableDiffusionUpscalePipeline

    return _our_path(
        StableDiffusionUpscalePipeline, _upscale_call, folder, device, dtype, params, options
    )
