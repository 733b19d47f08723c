"""Request and response models of our own pipelines: the ones the runner contract does not have.

go-livepeer's runner spec has no text-to-video; this service serves one anyway, on its own route
(`POST /text-to-video`), through the jobs API and as a Live Runner app (which forwards any body).
Its wire format is ours, so it is defined here, apart from `contract.schemas` (the runner's, which
`tests/contract/test_spec_conformance.py` holds to the spec), in the same style: a `RequestModel`
body that ignores unknown fields, and the contract's `Media` for what is generated.

Defaults are those of the default model, Wan 2.1 T2V 1.3B (docs/pipelines.md#text-to-video):
832x480, 81 frames (5 s at 16 fps), 50 steps, guidance 5.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from contract.schemas import (
    NEGATIVE_PROMPT_DESCRIPTION,
    SAFETY_CHECK_DESCRIPTION,
    SEED_DESCRIPTION,
    Media,
    RequestModel,
)


class TextToVideoParams(RequestModel):
    model_id: str = Field("", description="Hugging Face model ID used for video generation.")
    prompt: str = Field(description="Text prompt to guide video generation.")
    negative_prompt: str = Field("", description=NEGATIVE_PROMPT_DESCRIPTION)
    height: int = Field(480, description="The height in pixels of the video (a multiple of 16).")
    width: int = Field(832, description="The width in pixels of the video (a multiple of 16).")
    num_frames: int = Field(
        81,
        description="Frames of the video: 4k+1 (1, 5, 9, ..., 81), at most "
        "ADAPTER_MAX_VIDEO_FRAMES.",
    )
    fps: int = Field(16, description="Frames per second of the MP4 (the model is trained at 16).")
    num_inference_steps: int = Field(
        50,
        description="Number of denoising steps; more is slower and usually better. Below 1 "
        "means the model's default.",
    )
    guidance_scale: float = Field(
        5.0, description="How closely to follow the prompt; 1 or less turns guidance off."
    )
    safety_check: bool = Field(
        True, description=SAFETY_CHECK_DESCRIPTION.replace("images", "frames")
    )
    seed: int | None = Field(None, description=SEED_DESCRIPTION)


class TextToVideoResponse(BaseModel):
    """One video: an H.264 MP4 as a data URL, with what it was made with."""

    video: Media = Field(
        description="`url` is `data:video/mp4;base64,...` (H.264, yuv420p, index at the front)."
    )
    num_frames: int = Field(description="Frames in the video.")
    fps: int = Field(description="Frames per second of the video.")
    width: int = Field(description="Width of the video in pixels.")
    height: int = Field(description="Height of the video in pixels.")
