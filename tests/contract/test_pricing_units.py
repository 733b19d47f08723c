"""go-livepeer's unit rule for every pipeline, pinned against worked examples.

The rules are those of go-livepeer `server/ai_http.go` `handleAIRequest` (commit 176aa415):
each case below is the number the orchestrator would debit for that request.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapter.pipelines.image_to_image import ImageToImageRunner
from adapter.pipelines.text_to_image import TextToImageRunner
from adapter.settings import Limits
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import (
    AudioToTextForm,
    ImageToImageForm,
    ImageToTextForm,
    ImageToVideoForm,
    LiveVideoToVideoParams,
    LLMRequest,
    SegmentAnything2Form,
    TextToImageParams,
    TextToSpeechParams,
    Upload,
    UpscaleForm,
)
from contract.units import (
    LIVE_PREPAY_UNITS,
    LIVE_UNITS_PER_SECOND,
    RequestFacts,
    UnitsError,
    live_video_units,
    request_units,
)


def upload(data: bytes = b"\x89PNG not decoded here") -> Upload:
    return Upload(data, filename="input.png")


def form(model, **fields):
    """A multipart request as FastAPI builds it from go-livepeer's form (values as strings)."""
    return model.model_validate(fields)


# --- text-to-image: height x width x num_images, 512 x 512 x 1 when absent -----------------


def test_text_to_image_counts_output_pixels_of_every_image():
    request = TextToImageParams.model_validate(
        {"prompt": "x", "width": 1024, "height": 768, "num_images_per_prompt": 2}
    )
    assert request_units(request) == 1024 * 768 * 2 == 1_572_864


def test_text_to_image_without_a_size_is_priced_at_512_square_not_the_runner_default():
    request = TextToImageParams.model_validate({"prompt": "x"})
    # The runner renders its default 1024x576; go-livepeer prices its own default 512x512.
    assert (request.width, request.height) == (1024, 576)
    assert request_units(request) == 512 * 512 == 262_144


def test_text_to_image_defaults_each_missing_field_alone():
    only_width = TextToImageParams.model_validate({"prompt": "x", "width": 1024})
    assert request_units(only_width) == 512 * 1024
    only_count = TextToImageParams.model_validate({"prompt": "x", "num_images_per_prompt": 3})
    assert request_units(only_count) == 512 * 512 * 3


# --- image-to-image: input pixels x num_images ---------------------------------------------


def test_image_to_image_counts_input_pixels_times_images():
    request = form(ImageToImageForm, prompt="x", image=upload(), num_images_per_prompt="3")
    assert request_units(request, RequestFacts(640, 480)) == 640 * 480 * 3 == 921_600


def test_image_to_image_output_settings_do_not_change_its_units():
    request = form(
        ImageToImageForm, prompt="x", image=upload(), strength="0.500000", num_inference_steps="10"
    )
    assert request_units(request, RequestFacts(640, 480)) == 307_200


def test_prepare_measures_the_input_and_keeps_what_the_client_left_out():
    from tests.support.livepeer_multipart import png_bytes

    # prepare() puts the checked image in the request; an absent count must stay absent.
    request = form(ImageToImageForm, prompt="x", image=upload(png_bytes(100, 50)))
    prepared = asyncio.run(ImageToImageRunner().prepare(request, Limits()))
    assert "num_images_per_prompt" not in prepared.request.model_fields_set
    assert prepared.facts == RequestFacts(input_width=100, input_height=50)
    assert request_units(prepared.request, prepared.facts) == 5_000


@pytest.mark.parametrize("facts", [RequestFacts(), RequestFacts(640, None), RequestFacts(0, 480)])
def test_input_pixel_pipelines_need_the_input_size(facts):
    request = form(ImageToImageForm, prompt="x", image=upload())
    with pytest.raises(UnitsError, match="input"):
        request_units(request, facts)


# --- image-to-video: height x width x 25 frames, 576 x 1024 when absent --------------------


def test_image_to_video_counts_25_frames_of_the_requested_size():
    request = form(ImageToVideoForm, image=upload(), width="512", height="512", fps="12")
    assert request_units(request, RequestFacts(1920, 1080)) == 512 * 512 * 25 == 6_553_600


def test_image_to_video_without_a_size_uses_576_by_1024():
    request = form(ImageToVideoForm, image=upload())
    assert request_units(request) == 576 * 1024 * 25 == 14_745_600


# --- upscale, segment-anything-2, image-to-text: input pixels -------------------------------


@pytest.mark.parametrize(
    "request_model",
    [
        form(UpscaleForm, prompt="x", image=upload(), num_inference_steps="5"),
        form(SegmentAnything2Form, image=upload(), point_coords="[[1, 2]]"),
        form(ImageToTextForm, image=upload(), prompt="describe"),
    ],
    ids=["upscale", "segment-anything-2", "image-to-text"],
)
def test_image_input_pipelines_count_input_pixels(request_model):
    assert request_units(request_model, RequestFacts(256, 192)) == 49_152


# --- audio-to-text: whole seconds x 1000 -----------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "units"),
    [(12_345, 12_000), (1_000, 1_000), (Decimal("59999.9"), 59_000), (3_600_000, 3_600_000)],
)
def test_audio_to_text_counts_whole_seconds_in_milliseconds(duration_ms, units):
    request = form(AudioToTextForm, audio=upload(b"RIFF"), return_timestamps="word")
    assert request_units(request, RequestFacts(audio_duration_ms=duration_ms)) == units


@pytest.mark.parametrize("duration_ms", [999, 0, -5])
def test_audio_under_one_second_is_refused_as_go_livepeer_does(duration_ms):
    request = form(AudioToTextForm, audio=upload(b"RIFF"))
    with pytest.raises(UnitsError, match="Unable to calculate duration"):
        request_units(request, RequestFacts(audio_duration_ms=duration_ms))


def test_audio_to_text_needs_the_duration():
    with pytest.raises(UnitsError, match="duration"):
        request_units(form(AudioToTextForm, audio=upload(b"RIFF")))


# --- llm: max_tokens ------------------------------------------------------------------------


def test_llm_counts_max_tokens_not_what_is_generated():
    request = LLMRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 512}
    )
    assert request_units(request) == 512


def test_llm_without_max_tokens_is_refused_as_the_orchestrator_does():
    request = LLMRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    assert request.max_tokens == 256  # what the runner would use
    with pytest.raises(UnitsError, match="MaxTokens not specified"):
        request_units(request)


# --- text-to-speech: 1000 x characters --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("Hello, world!", 13_000),
        ("héllo 👋", 7_000),  # Go counts runes (code points), not bytes (11 here)
        ("e\u0301", 2_000),  # a combining accent is a rune of its own
        ("", 0),
    ],
)
def test_text_to_speech_counts_a_thousand_per_character(text, units):
    assert request_units(TextToSpeechParams.model_validate({"text": text})) == units


# --- live-video-to-video and the whole table --------------------------------------------------


def test_live_video_is_billed_as_720p30_per_second_whatever_the_stream():
    request = LiveVideoToVideoParams.model_validate({"subscribe_url": "a", "publish_url": "b"})
    with pytest.raises(UnitsError, match="1280 x 720 x 30 units per second"):
        request_units(request)
    # go-livepeer's LivePaymentProcessor: 27,648,000 units a second of session, the same for a
    # 512x512 stream at 15 fps as for 1080p at 60; the seconds are wall-clock, truncated once.
    assert live_video_units(1) == LIVE_UNITS_PER_SECOND == 27_648_000
    assert live_video_units(10) == 276_480_000
    assert live_video_units(Decimal("2.5")) == 69_120_000
    assert live_video_units(0.1) == 2_764_800
    # The gateway pre-pays 60 s of it.
    assert live_video_units(60) == LIVE_PREPAY_UNITS == 1_658_880_000
    with pytest.raises(UnitsError):
        live_video_units(-1)
    # Its unit is named for that fixed rate, not for the stream's own pixels.
    name = PIPELINE_SPECS[Pipeline.LIVE_VIDEO_TO_VIDEO].unit_name
    assert "1280x720 at 30 fps" in name and "27,648,000 a second" in name


def test_every_pipeline_has_a_unit_rule_and_a_unit_name():
    assert set(Pipeline) == set(PIPELINE_SPECS)
    assert all(spec.unit_name for spec in PIPELINE_SPECS.values())


def test_a_model_that_is_no_pipeline_request_is_refused():
    from contract.schemas import RequestModel

    class Other(RequestModel):
        pass

    with pytest.raises(UnitsError, match="not the request model"):
        request_units(Other())


def test_pipelines_without_uploads_need_no_facts():
    request = TextToImageParams.model_validate({"prompt": "x"})
    assert asyncio.run(TextToImageRunner().prepare(request, Limits())).facts == RequestFacts()
