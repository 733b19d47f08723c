"""Image-to-video over real HTTP, as go-livepeer sends it, on a tiny Stable Video Diffusion."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from functions.image_to_video import choose_decode_chunk_size
from tests.support.apps import make_app, model_entry, running_client, serve
from tests.support.images import decode, pixels
from tests.support.livepeer_multipart import png_bytes, post_image

GIB = 1024**3


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_svd, flagging_checker):
    tmp = tmp_path_factory.mktemp("image-to-video")
    entries = [
        model_entry("image-to-video", tiny_svd, "test/svd", runner={"default": True}),
        model_entry(
            "image-to-video",
            tiny_svd,
            "test/svd-2-frames",
            runner={"num_frames": 2, "decode_chunk_size": 1},
        ),
        model_entry(
            "image-to-video",
            tiny_svd,
            "test/svd-flagged",
            runner={"safety_checker": str(flagging_checker)},
        ),
    ]
    with serve(make_app(tmp, entries)) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def animate(http, image=None, **fields):
    body = {"height": 48, "width": 64, "num_inference_steps": 2, **fields}
    response = post_image(http, "/image-to-video", png_bytes() if image is None else image, **body)
    assert response.status_code == 200, response.text
    return response.json()["frames"]


def video_pixels(frames):
    return np.stack([pixels(frame["url"]) for frame in frames[0]])


def test_returns_one_video_of_the_models_frames_at_the_requested_size(http):
    frames = animate(
        http, seed=42, fps=8, motion_bucket_id=100, noise_aug_strength=0.02, safety_check=True
    )
    assert len(frames) == 1
    assert len(frames[0]) == 3  # the tiny model's own num_frames
    for frame in frames[0]:
        assert set(frame) == {"url", "seed", "nsfw"}
        assert (frame["seed"], frame["nsfw"]) == (42, False)
        assert decode(frame["url"]).size == (64, 48)


def test_num_frames_comes_from_the_runner_settings(http):
    frames = animate(http, model_id="test/svd-2-frames", seed=1, height=32, width=40)
    assert len(frames[0]) == 2
    assert decode(frames[0][0]["url"]).size == (40, 32)


def test_same_seed_same_video_other_seed_or_input_another(http):
    first = video_pixels(animate(http, seed=11))
    assert np.array_equal(first, video_pixels(animate(http, seed=11)))
    assert not np.array_equal(first, video_pixels(animate(http, seed=12)))
    assert not np.array_equal(first, video_pixels(animate(http, image=png_bytes(seed=5), seed=11)))


def test_motion_fields_condition_the_video(http):
    base = video_pixels(animate(http, seed=3))
    for field, value in (("fps", 12), ("motion_bucket_id", 10), ("noise_aug_strength", 0.5)):
        assert not np.array_equal(base, video_pixels(animate(http, seed=3, **{field: value})))


def test_without_seed_one_random_seed_serves_every_frame(http):
    frames = animate(http)
    seeds = {frame["seed"] for frame in frames[0]}
    assert len(seeds) == 1 and 0 <= seeds.pop() <= 2**32 - 1


def test_nsfw_reflects_the_input_image_on_every_frame(http):
    frames = animate(http, model_id="test/svd-flagged", seed=4)
    assert [frame["nsfw"] for frame in frames[0]] == [True, True, True]
    unchecked = animate(http, model_id="test/svd-flagged", seed=4, safety_check=False)
    assert [frame["nsfw"] for frame in unchecked[0]] == [False, False, False]


def test_request_checks_give_400_with_the_contract_body(http):
    def refused(**fields):
        response = post_image(http, "/image-to-video", png_bytes(), **fields)
        assert response.status_code == 400, response.text
        return response.json()["detail"]["msg"]

    assert refused(height=50, width=64) == "width and height must be multiples of 8, got 64x50."
    assert refused(fps=0) == "fps must be at least 1, got 0."
    assert refused(motion_bucket_id=-1) == "motion_bucket_id must not be negative, got -1."
    assert "ADAPTER_MAX_PIXELS_PER_IMAGE=" in refused(height=2048, width=2048)
    assert "ADAPTER_MAX_INFERENCE_STEPS=" in refused(num_inference_steps=1000)


@pytest.mark.parametrize(("runner", "limit"), [({"num_frames": 5}, 4), ({}, 2)])
def test_a_model_making_more_frames_than_max_video_frames_does_not_load(
    app_factory, tiny_svd, runner, limit
):
    entry = model_entry("image-to-video", tiny_svd, "test/svd", runner=runner)
    with running_client(app_factory([entry], limits={"max_video_frames": limit})) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        response = post_image(client, "/image-to-video", png_bytes(), height=48, width=64)
        assert response.status_code == 500
        msg = response.json()["detail"]["msg"]
        assert f"over the limit ADAPTER_MAX_VIDEO_FRAMES={limit}" in msg


def test_decode_chunk_size_fits_a_share_of_the_free_memory():
    def chunk(free_gib, height=576, width=1024, frames=25, dtype=torch.float16):
        return choose_decode_chunk_size(
            num_frames=frames,
            height=height,
            width=width,
            dtype=dtype,
            free_bytes=None if free_gib is None else int(free_gib * GIB),
        )

    # SVD-XT decodes a 576x1024 frame in about 2.6 GiB of float16 (H100, 2026-11-22).
    assert chunk(140) == 25  # an H200: every frame at once
    assert chunk(19) == 5  # a 24 GiB card after the weights
    assert chunk(19, dtype=torch.float32) == 2
    assert chunk(19, height=288, width=512) == 22
    assert chunk(1) == 1  # never less than one frame
    assert chunk(None) == 4  # memory unknown: the runner's fixed choice
    assert chunk(None, frames=3) == 3


def test_a_gone_client_stops_the_video_between_steps(tiny_svd):
    from functions.cancel import GenerationCancelled
    from functions.image_to_video import ImageToVideo
    from tests.support.livepeer_multipart import noise_image

    video = ImageToVideo.load(tiny_svd, device=torch.device("cpu"), dtype=torch.float32)
    calls = []

    def should_stop():
        calls.append(True)
        return True

    with pytest.raises(GenerationCancelled):
        video.generate(
            image=noise_image(), height=48, width=64, num_inference_steps=3, should_stop=should_stop
        )
    assert len(calls) == 1


def test_decoding_in_chunks_gives_the_pipelines_own_frames(tiny_svd):
    from functions.image_to_video import ImageToVideo
    from tests.support.livepeer_multipart import noise_image

    video = ImageToVideo.load(tiny_svd, device=torch.device("cpu"), dtype=torch.float32)
    image = noise_image()
    for chunk in (1, 2, 3):
        video.decode_chunk_size = chunk
        ours = video.generate(image=image, height=48, width=64, num_inference_steps=2, seed=5)
        theirs = video.pipe(
            image,
            height=48,
            width=64,
            num_frames=video.num_frames,
            num_inference_steps=2,
            fps=6,
            decode_chunk_size=chunk,
            generator=torch.Generator("cpu").manual_seed(5),
            output_type="pil",
        ).frames
        assert [np.asarray(frame).tolist() for frame in ours.frames[0]] == [
            np.asarray(frame).tolist() for frame in theirs[0]
        ]


def test_a_gone_client_stops_the_video_between_decode_chunks(tiny_svd):
    from functions.cancel import GenerationCancelled
    from functions.image_to_video import ImageToVideo
    from tests.support.livepeer_multipart import noise_image

    video = ImageToVideo.load(
        tiny_svd, device=torch.device("cpu"), dtype=torch.float32, decode_chunk_size=1
    )
    decoded = []
    decode = video.pipe.vae.decode

    def counting_decode(*args, **kwargs):
        decoded.append(True)
        return decode(*args, **kwargs)

    video.pipe.vae.decode = counting_decode
    # The client leaves once the first chunk (of the model's 3 frames) is decoding.
    with pytest.raises(GenerationCancelled):
        video.generate(
            image=noise_image(),
            height=48,
            width=64,
            num_inference_steps=2,
            should_stop=lambda: bool(decoded),
        )
    assert len(decoded) == 1


def test_a_gone_client_stops_the_video_within_a_chunk_of_every_frame(tiny_svd):
    from functions.cancel import GenerationCancelled
    from functions.image_to_video import ImageToVideo
    from tests.support.livepeer_multipart import noise_image

    # One chunk decodes the whole video (the choice where memory allows): the decoder checks
    # between its layers.
    video = ImageToVideo.load(
        tiny_svd, device=torch.device("cpu"), dtype=torch.float32, decode_chunk_size=3
    )
    decoder = video.pipe.vae.decoder
    layers_run = []
    hook = decoder.conv_out.register_forward_hook(lambda *_: layers_run.append(True))
    decoding = []
    start = decoder.register_forward_pre_hook(lambda *_: decoding.append(True))
    try:
        with pytest.raises(GenerationCancelled):
            video.generate(
                image=noise_image(),
                height=48,
                width=64,
                num_inference_steps=2,
                should_stop=lambda: bool(decoding),
            )
    finally:
        hook.remove()
        start.remove()
    assert decoding and not layers_run  # stopped inside the decoder, before its last layer
    # and left no check behind in the model
    assert not any(layer._forward_pre_hooks for layer in decoder.modules())


def test_a_client_leaving_a_video_frees_the_model_for_the_next_request(app_factory, tiny_svd):
    from tests.support.abandoned import assert_an_abandoned_video_frees_the_model

    entry = model_entry("image-to-video", tiny_svd, "test/svd")
    with serve(app_factory([entry])) as url:
        assert_an_abandoned_video_frees_the_model(url)
