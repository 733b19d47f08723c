"""Image-to-video glue: ImageToVideoForm -> functions.image_to_video -> VideoResponse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.limits import the_limit
from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.image_input import checked_image, prepared_image
from adapter.pipelines.text_to_image import load_safety_checker
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from contract.schemas import ImageToVideoForm, Media, RequestModel, VideoResponse

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel


class ImageToVideoRunner(PipelineRunner):
    pipeline = Pipeline.IMAGE_TO_VIDEO

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.image_to_video import check_inputs

        assert isinstance(request, ImageToVideoForm)
        # The pipeline resizes the input to width x height, so any size up to the limit will do.
        image, size = await checked_image(request.image, limits)
        check_inputs(
            image_size=size,
            width=request.width,
            height=request.height,
            fps=request.fps,
            motion_bucket_id=request.motion_bucket_id,
            noise_aug_strength=request.noise_aug_strength,
            seed=request.seed,
        )
        # go-livepeer prices the video by its requested size, from the fields alone.
        return Prepared(request.model_copy(update={"image": image}))

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
                f"{the_limit('max_video_frames', settings.limits)}; set runner.num_frames in "
                "its aiModels.json entry or raise the limit"
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
