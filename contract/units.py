"""The units of work a request is paid for, exactly as go-livepeer's orchestrator counts them.

go-livepeer debits `units x price_per_unit / pixels_per_unit` (in wei) after a job succeeds
(`server/ai_http.go` `handleAIRequest`, commit 176aa415). Its rule for each pipeline:

    text-to-image        height x width x num_images_per_prompt   (height, width 512 and
                         num_images 1 when the request omits them)
    image-to-image       input image height x width x num_images_per_prompt (1 when omitted)
    image-to-video       height x width x 25 frames               (576 x 1024 when omitted)
    upscale, segment-anything-2, image-to-text
                         input image height x width
    audio-to-text        whole seconds of audio x 1000: the container's duration as FFmpeg reads
                         it from a pipe, truncated; for mp3, wav and aac without one, bytes x 8
                         / bitrate (lpms GetCodecInfoBytes). Under one second, or unmeasurable,
                         is refused: "Unable to calculate duration"
    llm                  max_tokens (a request without it is refused: "MaxTokens not specified")
    text-to-speech       1000 x the number of characters (Unicode code points) of `text`
    live-video-to-video  1280 x 720 x 30 per wall-clock second of the session, whatever the
                         stream's real size and rate (`server/live_payment_processor.go`)

text-to-video is not a go-livepeer pipeline, so its rule is **our own**, image-to-video's kind:

    text-to-video        height x width x num_frames of the request (its defaults, 480 x 832 x
                         81, for the fields it omits: no gateway fills them in)

"Omitted" means absent from the request body, not the runner's default: the orchestrator prices
a text-to-image request without `height` at 512 pixels, while the runner renders 576. Requests
from a go-livepeer gateway always carry height, width and num_images (it fills 512 x 512 and 1).

A unit depends on more than the request fields for the multipart pipelines: the size of the
uploaded image or the length of the uploaded audio. The adapter learns those when it decodes the
upload and passes them in `RequestFacts`; this module never decodes anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from contract.errors import UnitsError
from contract.own_schemas import TextToVideoParams
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import (
    AudioToTextForm,
    ImageToImageForm,
    ImageToTextForm,
    ImageToVideoForm,
    LLMRequest,
    RequestModel,
    SegmentAnything2Form,
    TextToImageParams,
    TextToSpeechParams,
    UpscaleForm,
)

# go-livepeer's defaults when a field is absent from the request.
DEFAULT_IMAGE_SIDE = 512  # text-to-image height and width
DEFAULT_VIDEO_HEIGHT = 576
DEFAULT_VIDEO_WIDTH = 1024
VIDEO_FRAMES = 25  # stable-video-diffusion-img2vid-xt's frame count, fixed in go-livepeer
MS_PER_SECOND = 1000
UNITS_PER_CHARACTER = 1000

# go-livepeer bills a live-video-to-video session as if it were 1280x720 at 30 fps, whatever
# the stream is (`defaultSegInfo` of server/live_payment_processor.go, since c71d466cc).
LIVE_UNITS_PER_SECOND = 1280 * 720 * 30
# The gateway's pre-payment of a live stream: 60 s of that.
LIVE_PREPAY_UNITS = 60 * LIVE_UNITS_PER_SECOND


@dataclass(frozen=True)
class RequestFacts:
    """What the adapter learned about a request's uploads when it decoded them."""

    input_width: int | None = None
    input_height: int | None = None
    # Length of the uploaded audio in milliseconds as go-livepeer measures it (the adapter
    # passes functions.audio.livepeer_seconds x 1000; any precision, truncated to seconds).
    audio_duration_ms: int | Decimal | None = None


def pipeline_of(request: RequestModel) -> Pipeline:
    for spec in PIPELINE_SPECS.values():
        if type(request) is spec.request:
            return spec.pipeline
    raise UnitsError(f"{type(request).__name__} is not the request model of any pipeline")


def _given(request: RequestModel, field: str) -> bool:
    return field in request.model_fields_set


def _images(request: TextToImageParams | ImageToImageForm) -> int:
    return request.num_images_per_prompt if _given(request, "num_images_per_prompt") else 1


def _input_pixels(pipeline: Pipeline, facts: RequestFacts) -> int:
    if facts.input_width is None or facts.input_height is None:
        raise UnitsError(
            f"{pipeline.value} is paid per input pixel: the input image's width and height "
            "are needed (RequestFacts.input_width/input_height)"
        )
    if facts.input_width < 1 or facts.input_height < 1:
        raise UnitsError(
            f"input image size must be positive, got {facts.input_width}x{facts.input_height}"
        )
    return facts.input_width * facts.input_height


def audio_units(duration_ms: int | Decimal) -> int:
    """Units of an audio file of `duration_ms`: whole seconds x 1000, as go-livepeer counts."""
    whole_seconds = int(Decimal(duration_ms) // MS_PER_SECOND)
    if whole_seconds <= 0:
        # go-livepeer: duration <= 0 -> 400 "Unable to calculate duration".
        raise UnitsError(
            f"Unable to calculate duration: {duration_ms} ms is under one whole second, which "
            "go-livepeer refuses"
        )
    return whole_seconds * MS_PER_SECOND


def request_units(request: RequestModel, facts: RequestFacts | None = None) -> int:
    """The units go-livepeer's orchestrator debits for `request` once it succeeds."""
    facts = facts or RequestFacts()
    pipeline = pipeline_of(request)
    match request:
        case TextToImageParams():
            height = request.height if _given(request, "height") else DEFAULT_IMAGE_SIDE
            width = request.width if _given(request, "width") else DEFAULT_IMAGE_SIDE
            return height * width * _images(request)
        case ImageToImageForm():
            return _input_pixels(pipeline, facts) * _images(request)
        case ImageToVideoForm():
            height = request.height if _given(request, "height") else DEFAULT_VIDEO_HEIGHT
            width = request.width if _given(request, "width") else DEFAULT_VIDEO_WIDTH
            return height * width * VIDEO_FRAMES
        case TextToVideoParams():
            # Our own rule (see the module docstring): the video that is made, pixel by frame.
            return request.height * request.width * request.num_frames
        case UpscaleForm() | SegmentAnything2Form() | ImageToTextForm():
            return _input_pixels(pipeline, facts)
        case AudioToTextForm():
            if facts.audio_duration_ms is None:
                raise UnitsError(
                    "audio-to-text is paid per millisecond of audio: the audio's duration is "
                    "needed (RequestFacts.audio_duration_ms)"
                )
            return audio_units(facts.audio_duration_ms)
        case LLMRequest():
            if not _given(request, "max_tokens"):
                # The orchestrator refuses it; a go-livepeer gateway always fills in 256.
                raise UnitsError("MaxTokens not specified: go-livepeer prices llm by max_tokens")
            return request.max_tokens
        case TextToSpeechParams():
            # Go's utf8.RuneCountInString: one per code point, as Python's len().
            return UNITS_PER_CHARACTER * len(request.text)
    raise UnitsError(
        f"{pipeline.value} is not priced per request: go-livepeer charges a live session "
        "1280 x 720 x 30 units per second of its length (see live_video_units)"
    )


def live_video_units(seconds: int | float | Decimal) -> int:
    """Units go-livepeer debits for `seconds` of a live-video-to-video session: 1280 x 720 x 30
    a second, truncated to a whole unit, however large, small or fast the stream really is."""
    if seconds < 0:
        raise UnitsError(f"a session cannot last {seconds} s")
    return int(LIVE_UNITS_PER_SECOND * Decimal(seconds))
