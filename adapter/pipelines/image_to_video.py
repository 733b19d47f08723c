"""Image-to-video glue: ImageToVideoForm -> functions.image_to_video -> VideoResponse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, StopCheck
from adapter.pipelines.image_input import prepare_image, prepared_image
from adapter.pipelines.text_to_image import load_safety_checker
from contract.errors import BadRequestError, ConfigError
from contract.pipelines import Pipeline
from contract.schemas import ImageToVideoForm, Media, RequestModel, VideoResponse

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel


class ImageToVideoRunner(PipelineRunner):
    pipeline = Pipeline.IMAGE_TO_VIDEO

    async def prepare(self, request: RequestModel, limits: Limits) -> RequestModel:
        assert isinstance(request, ImageToVideoForm)
        # The runner refuses sizes SVD cannot take before anything else.
        if request.height % 8 or request.width % 8:
            raise BadRequestError(
                f"height and width must be divisible by 8, got {request.height}x{request.width}."
            )
        request = await super().prepare(request, limits)
        if request.fps < 1:
            raise BadRequestError(f"fps must be at least 1, got {request.fps}.")
        if request.motion_bucket_id < 0:
            raise BadRequestError(
                f"motion_bucket_id must not be negative, got {request.motion_bucket_id}."
            )
        if request.noise_aug_strength < 0:
            raise BadRequestError(
                f"noise_aug_strength must not be negative, got {request.noise_aug_strength}."
            )
        # The pipeline resizes the input to height x width, so any size up to the limit will do.
        prepared, _size = await prepare_image(request, limits)
        return prepared

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.image_models import build_tiny_svd

        build_tiny_svd(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.image_to_video import ImageToVideo, model_num_frames

        # Requests cannot choose the frame count, so a model over the limit could serve none:
        # refuse it before its weights are loaded.
        frames = model.runner.num_frames or model_num_frames(folder)
        limit = settings.limits.max_video_frames
        if frames > limit:
            raise ConfigError(
                f"{model.key} makes {frames} frames per video, over the limit "
                f"max_video_frames={limit}; set runner.num_frames in its aiModels.json entry "
                "or raise ADAPTER_MAX_VIDEO_FRAMES"
            )
        return ImageToVideo.load(
            folder,
            device=device,
            dtype=dtype,
            num_frames=frames,
            num_inference_steps=model.runner.num_inference_steps,
            decode_chunk_size=model.runner.decode_chunk_size,
            safety_checker=load_safety_checker(model.runner.safety_checker, device, settings),
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        from functions.media import png_data_url

        assert isinstance(request, ImageToVideoForm)
        result = handle.generate(
            image=prepared_image(request.image),
            height=request.height,
            width=request.width,
            fps=request.fps,
            motion_bucket_id=request.motion_bucket_id,
            noise_aug_strength=request.noise_aug_strength,
            num_inference_steps=request.num_inference_steps,
            seed=request.seed,
            safety_check=request.safety_check,
            should_stop=should_stop,
        )
        return VideoResponse(
            frames=[
                [
                    Media(url=png_data_url(frame), seed=result.seed, nsfw=result.nsfw)
                    for frame in video
                ]
                for video in result.frames
            ]
        )
