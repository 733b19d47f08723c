"""Text-to-video over real HTTP on a tiny random-weight Wan 2.1: an H.264 MP4 of the frames asked
for, seeds as the image pipelines do them, every limit and bad input a 400, cancel between steps."""

from __future__ import annotations

import base64
import io
import time

import av
import httpx
import numpy as np
import pytest
import torch

from contract.own_schemas import TextToVideoParams
from contract.units import request_units
from tests.support.apps import make_app, model_entry, serve

SMALL = {"height": 32, "width": 48, "num_frames": 5, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_wan, flagging_checker):
    tmp = tmp_path_factory.mktemp("text-to-video")
    entries = [
        model_entry("text-to-video", tiny_wan, "test/wan", runner={"default": True}),
        model_entry(
            "text-to-video",
            tiny_wan,
            "test/wan-flagged",
            runner={"safety_checker": str(flagging_checker)},
        ),
        model_entry(
            "text-to-video", tiny_wan, "test/wan-1-step", runner={"num_inference_steps": 1}
        ),
    ]
    with serve(make_app(tmp, entries, limits={"max_video_frames": 33})) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def generate(http, **fields):
    response = http.post("/text-to-video", json={"prompt": "a red fox", **SMALL, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def mp4_of(answer) -> bytes:
    prefix = "data:video/mp4;base64,"
    url = answer["video"]["url"]
    assert url.startswith(prefix)
    return base64.b64decode(url[len(prefix) :], validate=True)


def decoded(answer) -> tuple[av.video.stream.VideoStream, np.ndarray]:
    with av.open(io.BytesIO(mp4_of(answer))) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return stream, np.stack(frames)


def test_answers_one_h264_mp4_of_the_requested_frames_and_size(http):
    answer = generate(http, seed=42, fps=8, height=48, width=64, num_frames=9)
    assert set(answer) == {"video", "num_frames", "fps", "width", "height"}
    shape = (answer["num_frames"], answer["fps"], answer["width"], answer["height"])
    assert shape == (9, 8, 64, 48)
    assert (answer["video"]["seed"], answer["video"]["nsfw"]) == (42, False)
    stream, frames = decoded(answer)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert stream.average_rate == 8
    assert frames.shape == (9, 48, 64, 3)


def test_one_frame_is_a_video_too(http):
    _stream, frames = decoded(generate(http, num_frames=1, seed=1))
    assert frames.shape == (1, 32, 48, 3)


def test_same_seed_same_video_other_seed_or_prompt_another(http):
    _, first = decoded(generate(http, seed=11))
    assert np.array_equal(first, decoded(generate(http, seed=11))[1])
    assert not np.array_equal(first, decoded(generate(http, seed=12))[1])
    assert not np.array_equal(first, decoded(generate(http, seed=11, prompt="a blue whale"))[1])


def test_without_a_seed_a_random_one_is_reported(http):
    seed = generate(http)["video"]["seed"]
    assert 0 <= seed <= 2**32 - 1


def test_the_entry_can_force_the_steps(http):
    forced = decoded(generate(http, model_id="test/wan-1-step", seed=3, num_inference_steps=2))[1]
    assert np.array_equal(forced, decoded(generate(http, seed=3, num_inference_steps=1))[1])


def test_nsfw_comes_from_the_configured_checker(http):
    assert generate(http, model_id="test/wan-flagged", seed=4)["video"]["nsfw"] is True
    unchecked = generate(http, model_id="test/wan-flagged", seed=4, safety_check=False)
    assert unchecked["video"]["nsfw"] is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"height": 40}, "width and height must be multiples of 16, got 48x40."),
        ({"width": 8, "height": 8}, "width and height must be at least 16, got 8x8."),
        ({"num_frames": 6}, "num_frames must be 4k+1 (1, 5, 9, ..., 81), got 6"),
        ({"num_frames": 0}, "num_frames must be 4k+1 (1, 5, 9, ..., 81), got 0"),
        ({"fps": 0}, "fps must be between 1 and 60, got 0."),
        ({"fps": 61}, "fps must be between 1 and 60, got 61."),
        ({"guidance_scale": -1}, "guidance_scale must be between 0 and 50, got -1.0."),
        ({"seed": -1}, "seed must be between 0 and"),
        ({"prompt": "  "}, "Prompt must be provided."),
        ({"model_id": "nope/nothing"}, "Model nope/nothing is not served for text-to-video"),
        ({"width": 1024, "height": 1040}, "over the limit ADAPTER_MAX_PIXELS_PER_IMAGE=1048576"),
        ({"num_frames": 37}, "num_frames=37 is over the limit ADAPTER_MAX_VIDEO_FRAMES=33."),
        ({"num_inference_steps": 101}, "over the limit ADAPTER_MAX_INFERENCE_STEPS=100."),
    ],
)
def test_every_bad_input_and_limit_is_a_400_with_the_contract_body(http, fields, message):
    response = http.post("/text-to-video", json={"prompt": "a fox", **SMALL, **fields})
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]["msg"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('"prompt": "a fox", "guidance_scale": NaN', "guidance_scale must be between 0 and 50"),
        ('"prompt": "a \\ud800 fox"', "prompt is not valid text: it holds a lone UTF-16"),
    ],
)
def test_json_that_python_reads_but_no_model_takes_is_a_400(http, fields, message):
    body = '{"height": 32, "width": 48, "num_frames": 5, ' + fields + "}"
    response = http.post(
        "/text-to-video", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]["msg"]


@pytest.mark.parametrize("body", [{}, {"prompt": "a fox", "num_frames": "many"}])
def test_a_missing_prompt_or_a_wrong_type_is_fastapis_422(http, body):
    response = http.post("/text-to-video", json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_a_gone_client_stops_the_video_between_steps(tiny_wan):
    from functions.cancel import GenerationCancelled
    from functions.text_to_video import TextToVideo

    video = TextToVideo.load(tiny_wan, device=torch.device("cpu"), dtype=torch.float32)
    steps = []
    step = video.pipe.transformer.register_forward_hook(lambda *_: steps.append(True))
    try:
        with pytest.raises(GenerationCancelled):
            video.generate(
                prompt="a fox",
                height=32,
                width=32,
                num_frames=5,
                num_inference_steps=10,
                should_stop=lambda: bool(steps),
            )
    finally:
        step.remove()
    # One step ran (its two passes: with and without the prompt), then it stopped.
    assert len(steps) == 2


def test_a_gone_client_stops_the_video_inside_the_vae_decode(tiny_wan):
    from functions.cancel import GenerationCancelled
    from functions.text_to_video import TextToVideo

    video = TextToVideo.load(tiny_wan, device=torch.device("cpu"), dtype=torch.float32)
    decoder = video.pipe.vae.decoder
    decoding, finished = [], []
    start = decoder.register_forward_pre_hook(lambda *_: decoding.append(True))
    end = decoder.register_forward_hook(lambda *_: finished.append(True))
    try:
        with pytest.raises(GenerationCancelled):
            video.generate(
                prompt="a fox",
                height=32,
                width=32,
                num_frames=9,
                num_inference_steps=2,
                should_stop=lambda: bool(decoding),
            )
    finally:
        start.remove()
        end.remove()
    assert decoding and not finished  # stopped within the decoder's first pass
    assert not any(layer._forward_pre_hooks for layer in decoder.modules())  # no check left


def test_a_client_leaving_a_long_video_frees_the_model(base_url, http):
    quick_started = time.monotonic()
    generate(http, seed=1)
    quick = time.monotonic() - quick_started
    # Most of a minute of steps on a CPU (each about half a second at this size).
    long = {"prompt": "a fox", "height": 256, "width": 256, "num_frames": 33}
    long |= {"num_inference_steps": 100}
    leaving = httpx.Client(base_url=base_url, timeout=httpx.Timeout(60, read=1.0))
    with leaving, pytest.raises(httpx.ReadTimeout):
        leaving.post("/text-to-video", json=long)
    behind_started = time.monotonic()
    generate(http, seed=2)
    behind = time.monotonic() - behind_started
    # Had the abandoned video run on, the next would have waited most of a minute; stopped at
    # its next step, a few seconds at most (a step on a busy CPU).
    assert behind < 2 * quick + 10.0, f"{behind:.2f} s behind an abandoned video, {quick:.2f} alone"


def test_units_are_pixels_times_frames_our_own_rule():
    request = TextToVideoParams(prompt="a fox", height=48, width=64, num_frames=9)
    assert request_units(request) == 48 * 64 * 9
    assert request_units(TextToVideoParams(prompt="a fox")) == 480 * 832 * 81


def test_the_route_is_in_our_openapi_outside_the_runner_contract(http):
    document = http.get("/openapi.json").json()
    operation = document["paths"]["/text-to-video"]["post"]
    assert operation["operationId"] == "genTextToVideo"
    assert "Not part of the Livepeer runner contract" in operation["description"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/TextToVideoParams")
    assert {"400", "401", "413", "422", "500", "503"} <= set(operation["responses"])


def test_auto_on_a_gpu_means_bfloat16_with_a_float32_vae(tiny_wan, tmp_path):
    from adapter.pipelines.text_to_video import TextToVideoRunner
    from contract.aimodels import merge_entries, parse_entries
    from tests.support.apps import make_settings

    (model,) = merge_entries(parse_entries([model_entry("text-to-video", tiny_wan, "test/wan")]))
    # What the worker hands a GPU load under torch_dtype "auto": float16 (here on the CPU).
    handle = TextToVideoRunner().load(
        model, tiny_wan, torch.device("cpu"), torch.float16, make_settings(tmp_path)
    )
    pipe = handle.pipe
    assert (pipe.transformer.dtype, pipe.text_encoder.dtype) == (torch.bfloat16, torch.bfloat16)
    assert pipe.vae.dtype == torch.float32
    assert len(handle.generate(prompt="x", height=16, width=16, num_frames=1).frames) == 1
