"""Request and response models of every runner pipeline, faithful to the runner's OpenAPI spec.

This is the one place the wire format is defined: the routes, the backends, the Modal classes,
pricing and the tests all import it. Field names, types and defaults follow
`ai-runner-openapi.yaml` (runner 0.14.1); `tests/test_spec_conformance.py` checks them against it.

JSON pipelines take a model as the body; multipart pipelines take a model whose file fields are
`Upload`s, read by FastAPI from a form (`Annotated[Model, Form()]`): validating the form turns
each uploaded file into a plain `Upload` value, so nothing past the route holds a web framework's
file object. go-livepeer sends form values as strings (`7.500000`, `true`), which pydantic's lax
mode parses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

LORAS_DESCRIPTION = (
    "A LoRA (Low-Rank Adaptation) model and its corresponding weight for image generation. "
    'Example: { "latent-consistency/lcm-lora-sdxl": 1.0, "nerijs/pixel-art-xl": 1.2}.'
)
SAFETY_CHECK_DESCRIPTION = (
    "Perform a safety check to estimate if generated images could be offensive or harmful."
)
STEPS_DESCRIPTION = (
    "Number of denoising steps. More steps usually lead to higher quality images but slower "
    "inference. Modulated by strength."
)
GUIDANCE_DESCRIPTION = (
    "Encourages model to generate images closely linked to the text prompt (higher values may "
    "reduce image quality)."
)
NEGATIVE_PROMPT_DESCRIPTION = (
    "Text prompt(s) to guide what to exclude from image generation. Ignored if guidance_scale < 1."
)
SEED_DESCRIPTION = "Seed for random number generation."


@dataclass(frozen=True)
class Upload:
    """An uploaded file once its form is validated: its bytes, and what the client called it."""

    data: bytes = field(repr=False)
    filename: str | None = None
    content_type: str | None = None

    def __repr__(self) -> str:
        return f"Upload({self.filename!r}, {len(self.data)} bytes, {self.content_type!r})"


def _as_upload(value: Any) -> Upload:
    """An `Upload` as is, or the file part of a parsed form (Starlette's UploadFile) read whole.

    The form parser has received the whole body already (bounded by the body-size limit), so
    reading its spooled file here waits on nothing.
    """
    if isinstance(value, Upload):
        return value
    from starlette.datastructures import UploadFile

    if isinstance(value, UploadFile):
        value.file.seek(0)
        return Upload(value.file.read(), value.filename, value.content_type)
    raise ValueError(f"Expected an uploaded file, received: {type(value).__name__}")


# A file field of a multipart body. In the OpenAPI document it reads as FastAPI writes an
# UploadFile (the serializer keeps `Upload` itself out of the document's schemas).
UploadField = Annotated[
    Upload,
    PlainValidator(_as_upload),
    PlainSerializer(lambda upload: upload, return_type=Any),
    WithJsonSchema({"type": "string", "contentMediaType": "application/octet-stream"}),
]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are ignored, as the runner ignores them."""

    model_config = ConfigDict(extra="ignore")


# --- JSON request bodies -------------------------------------------------------------------


class TextToImageParams(RequestModel):
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    loras: str = Field("", description=LORAS_DESCRIPTION)
    prompt: str = Field(
        description="Text prompt(s) to guide image generation. Separate multiple prompts with "
        "'|' if supported by the model."
    )
    height: int = Field(576, description="The height in pixels of the generated image.")
    width: int = Field(1024, description="The width in pixels of the generated image.")
    guidance_scale: float = Field(7.5, description=GUIDANCE_DESCRIPTION)
    negative_prompt: str = Field("", description=NEGATIVE_PROMPT_DESCRIPTION)
    safety_check: bool = Field(True, description=SAFETY_CHECK_DESCRIPTION)
    seed: int | None = Field(None, description=SEED_DESCRIPTION)
    num_inference_steps: int = Field(50, description=STEPS_DESCRIPTION)
    num_images_per_prompt: int = Field(1, description="Number of images to generate per prompt.")


class LLMMessage(BaseModel):
    role: str
    content: str


class LLMRequest(RequestModel):
    messages: list[LLMMessage]
    model: str = ""
    temperature: float = 0.7
    max_tokens: int = 256
    top_p: float = 1.0
    top_k: int = -1
    stream: bool = False


class TextToSpeechParams(RequestModel):
    model_id: str = Field(
        "", description="Hugging Face model ID used for text to speech generation."
    )
    text: str = Field("", description="Text input for speech generation.")
    description: str = Field(
        "A male speaker delivers a slightly expressive and animated speech with a moderate "
        "speed and pitch.",
        description="Description of speaker to steer text to speech generation.",
    )


class LiveVideoToVideoParams(RequestModel):
    subscribe_url: str = Field(description="Source URL of the incoming stream to subscribe to.")
    publish_url: str = Field(description="Destination URL of the outgoing stream to publish.")
    control_url: str = ""
    events_url: str = ""
    model_id: str = Field(
        "",
        description="Name of the pipeline to run in the live video to video job (not a Hugging "
        "Face model ID).",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    gateway_request_id: str = ""
    manifest_id: str = ""
    stream_id: str = ""


# --- multipart/form-data request bodies ----------------------------------------------------
# go-livepeer writes the file part first, then only the fields that are set.


class ImageToImageForm(RequestModel):
    prompt: str = Field(description="Text prompt(s) to guide image generation.")
    image: UploadField = Field(description="Uploaded image to modify with the pipeline.")
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    loras: str = Field("", description=LORAS_DESCRIPTION)
    strength: float = Field(
        0.8, description="Degree of transformation applied to the reference image (0 to 1)."
    )
    guidance_scale: float = Field(7.5, description=GUIDANCE_DESCRIPTION)
    image_guidance_scale: float = Field(
        1.5,
        description="Degree to which the generated image is pushed towards the initial image.",
    )
    negative_prompt: str = Field("", description=NEGATIVE_PROMPT_DESCRIPTION)
    safety_check: bool = Field(True, description=SAFETY_CHECK_DESCRIPTION)
    seed: int | None = Field(None, description=SEED_DESCRIPTION)
    num_inference_steps: int = Field(100, description=STEPS_DESCRIPTION)
    num_images_per_prompt: int = Field(1, description="Number of images to generate per prompt.")


class ImageToVideoForm(RequestModel):
    image: UploadField = Field(description="Uploaded image to generate a video from.")
    model_id: str = Field("", description="Hugging Face model ID used for video generation.")
    height: int = Field(576, description="The height in pixels of the generated video.")
    width: int = Field(1024, description="The width in pixels of the generated video.")
    fps: int = Field(6, description="The frames per second of the generated video.")
    motion_bucket_id: int = Field(
        127, description="Used for conditioning the amount of motion for the generation."
    )
    noise_aug_strength: float = Field(
        0.02, description="Amount of noise added to the conditioning image."
    )
    safety_check: bool = Field(True, description=SAFETY_CHECK_DESCRIPTION)
    seed: int | None = Field(None, description=SEED_DESCRIPTION)
    num_inference_steps: int = Field(25, description=STEPS_DESCRIPTION)


class UpscaleForm(RequestModel):
    prompt: str = Field(description="Text prompt(s) to guide upscaled image generation.")
    image: UploadField = Field(description="Uploaded image to modify with the pipeline.")
    model_id: str = Field(
        "", description="Hugging Face model ID used for upscaled image generation."
    )
    safety_check: bool = Field(True, description=SAFETY_CHECK_DESCRIPTION)
    seed: int | None = Field(None, description=SEED_DESCRIPTION)
    num_inference_steps: int = Field(75, description=STEPS_DESCRIPTION)


class AudioToTextForm(RequestModel):
    audio: UploadField = Field(description="Uploaded audio file to be transcribed.")
    model_id: str = Field("", description="Hugging Face model ID used for transcription.")
    return_timestamps: str = Field(
        "true",
        description="Return timestamps for the transcribed text: 'sentence', 'word', or a "
        "string boolean ('true' means 'sentence', 'false' means none).",
    )
    metadata: str = Field("{}", description="Additional job information (JSON object).")


class SegmentAnything2Form(RequestModel):
    image: UploadField = Field(description="Image to segment.")
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    point_coords: str | None = Field(
        None,
        description="Nx2 array of point prompts to the model, where each point is in (X,Y) in "
        "pixels.",
    )
    point_labels: str | None = Field(
        None,
        description="Labels for the point prompts, where 1 indicates a foreground point and 0 "
        "indicates a background point.",
    )
    box: str | None = Field(
        None,
        description="A length 4 array given as a box prompt to the model, in XYXY format.",
    )
    mask_input: str | None = Field(
        None,
        description="A low-resolution mask input to the model, typically from a previous "
        "prediction iteration, with the form 1xHxW (H=W=256 for SAM).",
    )
    multimask_output: bool = Field(
        True,
        description="If true, the model will return three masks for ambiguous input prompts, "
        "often producing better masks than a single prediction.",
    )
    return_logits: bool = Field(
        True,
        description="If true, returns un-thresholded mask logits instead of a binary mask.",
    )
    normalize_coords: bool = Field(
        True,
        description="If true, the point coordinates will be normalized to the range [0,1], with "
        "point_coords expected to be with respect to image dimensions.",
    )


class ImageToTextForm(RequestModel):
    image: UploadField = Field(description="Uploaded image to transform with the pipeline.")
    prompt: str = Field("", description="Text prompt(s) to guide transformation.")
    model_id: str = Field("", description="Hugging Face model ID used for transformation.")


# --- responses -----------------------------------------------------------------------------


class Media(BaseModel):
    url: str = Field(description="The URL where the media can be accessed.")
    seed: int = Field(description="The seed used to generate the media.")
    nsfw: bool = Field(description="Whether the media was flagged as NSFW.")


class MediaURL(BaseModel):
    url: str


class ImageResponse(BaseModel):
    images: list[Media]


class VideoResponse(BaseModel):
    frames: list[list[Media]]


class Chunk(BaseModel):
    timestamp: list[Any]
    text: str


class TextResponse(BaseModel):
    text: str
    chunks: list[Chunk]


class MasksResponse(BaseModel):
    masks: str = Field(description="The generated masks.")
    scores: str = Field(description="The model's confidence scores for each generated mask.")
    logits: str = Field(description="The raw, unnormalized predictions (logits) for the masks.")


class ImageToTextResponse(BaseModel):
    text: str


class AudioResponse(BaseModel):
    audio: MediaURL


class LLMTokenUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LLMChoice(BaseModel):
    index: int
    finish_reason: str = ""
    delta: LLMMessage | None = None
    message: LLMMessage | None = None


class LLMResponse(BaseModel):
    id: str
    model: str
    created: int
    usage: LLMTokenUsage
    choices: list[LLMChoice]


class LiveVideoToVideoResponse(BaseModel):
    subscribe_url: str
    publish_url: str
    control_url: str = ""
    events_url: str = ""
    request_id: str = ""
    manifest_id: str = ""


# --- service routes ------------------------------------------------------------------------


class HealthStatus(StrEnum):
    LOADING = "LOADING"
    OK = "OK"
    ERROR = "ERROR"
    IDLE = "IDLE"


class HealthCheck(BaseModel):
    status: HealthStatus


class GPUComputeInfo(BaseModel):
    id: str
    name: str
    memory_total: int
    memory_free: int
    major: int
    minor: int


class GPUUtilizationInfo(BaseModel):
    id: str
    name: str
    memory_total: int
    memory_free: int
    utilization_compute: int
    utilization_memory: int


class HardwareInformation(BaseModel):
    pipeline: str
    model_id: str
    gpu_info: dict[int, GPUComputeInfo]


class HardwareStats(BaseModel):
    pipeline: str
    model_id: str
    gpu_stats: dict[int, GPUUtilizationInfo]


class Version(BaseModel):
    pipeline: str
    model_id: str
    version: str


class APIError(BaseModel):
    msg: str = Field(description="The error message.")


class HTTPError(BaseModel):
    detail: APIError
