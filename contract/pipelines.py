"""The runner's pipelines and the ONE table of what each one is on the wire and to go-livepeer.

Adding a pipeline: a `Pipeline` member and its `PipelineSpec` here, its request and response
models in `contract.schemas`, its glue in `adapter/pipelines/`, its inference in `functions/`.
A pipeline of our own, which go-livepeer's runner contract does not have (text-to-video), is
marked `runner_contract=False` and its models live in `contract.own_schemas`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contract.own_schemas import TextToVideoParams, TextToVideoResponse
from contract.schemas import (
    AudioResponse,
    AudioToTextForm,
    ImageResponse,
    ImageToImageForm,
    ImageToTextForm,
    ImageToTextResponse,
    ImageToVideoForm,
    LiveVideoToVideoParams,
    LiveVideoToVideoResponse,
    LLMRequest,
    LLMResponse,
    MasksResponse,
    RequestModel,
    SegmentAnything2Form,
    TextResponse,
    TextToImageParams,
    TextToSpeechParams,
    Upload,
    UpscaleForm,
    VideoResponse,
)


class Pipeline(StrEnum):
    """The runner's pipelines; each value is also the route path without its slash."""

    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    IMAGE_TO_VIDEO = "image-to-video"
    UPSCALE = "upscale"
    AUDIO_TO_TEXT = "audio-to-text"
    SEGMENT_ANYTHING_2 = "segment-anything-2"
    LLM = "llm"
    IMAGE_TO_TEXT = "image-to-text"
    TEXT_TO_SPEECH = "text-to-speech"
    LIVE_VIDEO_TO_VIDEO = "live-video-to-video"
    # Ours, outside the runner contract (runner_contract=False).
    TEXT_TO_VIDEO = "text-to-video"


class PipelineSpec(BaseModel):
    """What the routes need to know about one pipeline's wire format."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    pipeline: Pipeline
    request: type[RequestModel]
    response: type[BaseModel]
    body: Literal["json", "multipart"]
    summary: str
    description: str
    operation_id: str
    extra_error_statuses: tuple[int, ...] = ()
    # The field that names the model: `model` for /llm, `model_id` elsewhere.
    model_field: str = "model_id"
    # The runner's 401 message; its /llm and /image-to-text routes drop the final period.
    unauthorized_msg: str = "Invalid bearer token."
    # How long one request may take at a remote backend (http, Modal) before it is given up.
    # Generous: they bound a stuck backend, not a slow model (image-to-video at 25 frames of
    # 576x1024 takes about 20 s on an H100 and minutes on smaller GPUs).
    default_timeout_s: float = 300.0
    # What go-livepeer counts one unit of (contract/units.py holds the rule itself).
    unit_name: str = "output pixel"
    # The 500 message when the pipeline fails on a valid request, as the runner words it;
    # empty means "<Pipeline> pipeline error.".
    failure_msg: str = ""
    # A diffusers UNet pipeline: the runner compiles it (SFAST) and caches it (DEEPCACHE).
    diffusion: bool = False
    # Livepeer's recommended price in USD per unit of work (its docs), where it gives one; for a
    # pipeline of our own, our stand-in (said where it is set). Demo models are priced by it.
    recommended_usd_per_unit: Decimal | None = None
    # The request fields an enhanced job changes (the jobs door's "enhance": the same prompt,
    # seed and inputs, more steps); an entry's `runner.enhance` overrides them per model.
    enhance: dict[str, Any] = {}
    # Whether the runner's spec (ai-runner-openapi.yaml) has this route. The spec's checks skip
    # a pipeline of our own (False); it keeps the contract's error body, and declares 413 and 503
    # (extra_error_statuses) so its errors keep their own statuses: no go-livepeer client reads it.
    runner_contract: bool = True

    @property
    def upload_fields(self) -> tuple[str, ...]:
        """The request model's file fields (none for the JSON pipelines)."""
        return tuple(
            name for name, info in self.request.model_fields.items() if info.annotation is Upload
        )

    @property
    def uploads_image(self) -> bool:
        """Whether the request carries an image file (its units may depend on the image)."""
        return "image" in self.upload_fields

    @property
    def failure_message(self) -> str:
        return self.failure_msg or f"{self.pipeline.value.capitalize()} pipeline error."


PIPELINE_SPECS: dict[Pipeline, PipelineSpec] = {
    spec.pipeline: spec
    for spec in (
        PipelineSpec(
            pipeline=Pipeline.TEXT_TO_IMAGE,
            enhance={"num_inference_steps": 50},
            recommended_usd_per_unit=Decimal("1.9073484e-08"),
            default_timeout_s=300.0,
            unit_name="output pixel",
            diffusion=True,
            request=TextToImageParams,
            response=ImageResponse,
            body="json",
            summary="Text To Image",
            description="Generate images from text prompts.",
            operation_id="genTextToImage",
        ),
        PipelineSpec(
            pipeline=Pipeline.IMAGE_TO_IMAGE,
            enhance={"num_inference_steps": 100},
            recommended_usd_per_unit=Decimal("1.9073484e-08"),
            default_timeout_s=300.0,
            unit_name="input pixel x image",
            diffusion=True,
            request=ImageToImageForm,
            response=ImageResponse,
            body="multipart",
            summary="Image To Image",
            description="Apply image transformations to a provided image.",
            operation_id="genImageToImage",
        ),
        PipelineSpec(
            pipeline=Pipeline.IMAGE_TO_VIDEO,
            enhance={"num_inference_steps": 25},
            recommended_usd_per_unit=Decimal("1.3563368e-08"),
            default_timeout_s=900.0,
            unit_name="output pixel x frame",
            diffusion=True,
            request=ImageToVideoForm,
            response=VideoResponse,
            body="multipart",
            summary="Image To Video",
            description="Generate a video from a provided image.",
            operation_id="genImageToVideo",
        ),
        PipelineSpec(
            pipeline=Pipeline.UPSCALE,
            enhance={"num_inference_steps": 75},
            recommended_usd_per_unit=Decimal("1.9073484e-08"),
            default_timeout_s=300.0,
            unit_name="input pixel",
            diffusion=True,
            request=UpscaleForm,
            response=ImageResponse,
            body="multipart",
            summary="Upscale",
            description="Upscale an image by increasing its resolution.",
            operation_id="genUpscale",
        ),
        PipelineSpec(
            pipeline=Pipeline.AUDIO_TO_TEXT,
            recommended_usd_per_unit=Decimal("2e-08"),
            default_timeout_s=900.0,
            unit_name="millisecond of audio",
            request=AudioToTextForm,
            response=TextResponse,
            body="multipart",
            summary="Audio To Text",
            description="Transcribe audio files to text.",
            operation_id="genAudioToText",
            extra_error_statuses=(413, 415),
        ),
        PipelineSpec(
            pipeline=Pipeline.SEGMENT_ANYTHING_2,
            recommended_usd_per_unit=Decimal("3.22e-11"),
            default_timeout_s=120.0,
            unit_name="input pixel",
            request=SegmentAnything2Form,
            response=MasksResponse,
            body="multipart",
            summary="Segment Anything 2",
            description="Segment objects in an image.",
            operation_id="genSegmentAnything2",
        ),
        PipelineSpec(
            pipeline=Pipeline.LLM,
            recommended_usd_per_unit=Decimal("8e-08"),
            default_timeout_s=600.0,
            unit_name="max_tokens token",
            failure_msg="Internal server error during LLM processing.",
            request=LLMRequest,
            response=LLMResponse,
            body="json",
            summary="LLM",
            description="Generate text using a language model.",
            operation_id="genLLM",
            model_field="model",
            unauthorized_msg="Invalid bearer token",
        ),
        PipelineSpec(
            pipeline=Pipeline.IMAGE_TO_TEXT,
            recommended_usd_per_unit=Decimal("2.5e-10"),
            default_timeout_s=120.0,
            unit_name="input pixel",
            request=ImageToTextForm,
            response=ImageToTextResponse,
            body="multipart",
            summary="Image To Text",
            description="Transform image files to text.",
            operation_id="genImageToText",
            extra_error_statuses=(413,),
            unauthorized_msg="Invalid bearer token",
        ),
        PipelineSpec(
            pipeline=Pipeline.TEXT_TO_SPEECH,
            # Livepeer's 1.5e-06 USD per character; a unit is a thousandth of one.
            recommended_usd_per_unit=Decimal("1.5e-09"),
            default_timeout_s=300.0,
            unit_name="character / 1000",
            request=TextToSpeechParams,
            response=AudioResponse,
            body="json",
            summary="Text To Speech",
            description="Generate a text-to-speech audio file based on the provided text input "
            "and speaker description.",
            operation_id="genTextToSpeech",
        ),
        PipelineSpec(
            pipeline=Pipeline.LIVE_VIDEO_TO_VIDEO,
            default_timeout_s=60.0,
            # Whatever the stream: 1280 x 720 pixels x 30 frames a second of session.
            unit_name="pixel x frame of 1280x720 at 30 fps (27,648,000 a second)",
            request=LiveVideoToVideoParams,
            response=LiveVideoToVideoResponse,
            body="json",
            summary="Live Video To Video",
            description="Apply transformations to a live video streamed to the returned endpoints.",
            operation_id="genLiveVideoToVideo",
        ),
        PipelineSpec(
            pipeline=Pipeline.TEXT_TO_VIDEO,
            runner_contract=False,
            enhance={"num_inference_steps": 50},
            # Livepeer gives none: image-to-video's recommended price per pixel x frame.
            recommended_usd_per_unit=Decimal("1.3563368e-08"),
            # Wan 2.1 1.3B's 81 frames at 832x480 and 50 steps take minutes on one GPU.
            default_timeout_s=1800.0,
            # Our own rule (contract/units.py), as image-to-video's: go-livepeer has none.
            unit_name="output pixel x frame",
            request=TextToVideoParams,
            response=TextToVideoResponse,
            body="json",
            summary="Text To Video",
            description="Generate a video (H.264 MP4) from a text prompt. Not part of the "
            "Livepeer runner contract: this service's own pipeline.",
            operation_id="genTextToVideo",
            extra_error_statuses=(413, 503),
        ),
    )
}

# The pipelines of go-livepeer's runner contract, in the spec's order (ours excluded).
RUNNER_CONTRACT_SPECS: dict[Pipeline, PipelineSpec] = {
    pipeline: spec for pipeline, spec in PIPELINE_SPECS.items() if spec.runner_contract
}


def requested_model_id(spec: PipelineSpec, request: RequestModel) -> str:
    """The model a request names (empty when it names none)."""
    return str(getattr(request, spec.model_field, "") or "")
