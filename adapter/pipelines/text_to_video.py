"""Text-to-video glue: TextToVideoParams -> functions.text_to_video -> an MP4 TextToVideoResponse.

Not a pipeline of the runner contract (see contract/own_schemas.py); its limits are the
service's as for every pipeline (`adapter/limits.py`: pixels, frames, steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.text_to_image import load_safety_checker
from contract.own_schemas import TextToVideoParams, TextToVideoResponse
from contract.pipelines import Pipeline
from contract.schemas import Media, RequestModel

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel


class TextToVideoRunner(PipelineRunner):
    pipeline = Pipeline.TEXT_TO_VIDEO
    movable = True

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.text_to_video import check_inputs

        assert isinstance(request, TextToVideoParams)
        check_inputs(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=request.width,
            height=request.height,
            num_frames=request.num_frames,
            fps=request.fps,
            guidance_scale=request.guidance_scale,
            seed=request.seed,
        )
        return Prepared(request)

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.video_models import build_tiny_wan

        build_tiny_wan(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        import torch

        from functions.text_to_video import TextToVideo

        if model.runner.torch_dtype == "auto" and dtype == torch.float16:
            # Wan is trained in bfloat16, and its UMT5 text encoder (a T5) overflows in
            # float16; every GPU that runs it in reasonable time has bfloat16.
            dtype = torch.bfloat16
        guidance = model.runner.guidance_scale
        return TextToVideo.load(
            folder,
            device=device,
            dtype=dtype,
            # The VAE in float32 on a GPU, as Wan's own code runs it.
            vae_dtype=torch.float32,
            num_inference_steps=model.runner.num_inference_steps,
            guidance_scale=None if guidance is None else float(guidance),
            safety_checker=load_safety_checker(model.runner.safety_checker, device, settings),
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        from functions.video import encode_mp4, mp4_data_url

        assert isinstance(request, TextToVideoParams)
        result = handle.generate(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            seed=request.seed,
            safety_check=request.safety_check,
            should_stop=should_stop,
        )
        frames = result.frames
        width, height = frames[0].size
        return TextToVideoResponse(
            video=Media(
                url=mp4_data_url(encode_mp4(frames, request.fps)),
                seed=result.seed,
                nsfw=result.nsfw,
            ),
            num_frames=len(frames),
            fps=request.fps,
            width=width,
            height=height,
        )
