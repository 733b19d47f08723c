"""Upscale over real HTTP, as go-livepeer sends it, on a tiny Stable Diffusion x4 upscaler."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.apps import make_app, model_entry, serve
from tests.support.images import decode, pixels
from tests.support.livepeer_multipart import png_bytes, post_image


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_upscaler, flagging_checker):
    tmp = tmp_path_factory.mktemp("upscale")
    entries = [
        model_entry("upscale", tiny_upscaler, "test/x4", runner={"default": True}),
        model_entry(
            "upscale",
            tiny_upscaler,
            "test/x4-flagged",
            runner={"safety_checker": str(flagging_checker)},
        ),
    ]
    limits = {"max_upscale_input_pixels": 64 * 64}
    with serve(make_app(tmp, entries, limits=limits)) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def upscale(http, image=None, **fields):
    body = {"prompt": "a sharp photo", "num_inference_steps": 2, **fields}
    response = post_image(http, "/upscale", png_bytes() if image is None else image, **body)
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert len(images) == 1
    return images[0]


def test_returns_one_png_four_times_wider_and_higher(http):
    image = upscale(http, seed=77, safety_check=True)
    assert set(image) == {"url", "seed", "nsfw"}
    assert (image["seed"], image["nsfw"]) == (77, False)
    assert decode(image["url"]).size == (256, 192)


def test_odd_sizes_are_cropped_to_multiples_of_four_first(http):
    assert decode(upscale(http, image=png_bytes(63, 45), seed=1)["url"]).size == (240, 176)


def test_same_seed_same_image_other_seed_or_input_another(http):
    first = pixels(upscale(http, seed=5)["url"])
    assert np.array_equal(first, pixels(upscale(http, seed=5)["url"]))
    assert not np.array_equal(first, pixels(upscale(http, seed=6)["url"]))
    assert not np.array_equal(first, pixels(upscale(http, image=png_bytes(seed=3), seed=5)["url"]))


def test_seed_zero_or_none_means_a_random_seed_that_reproduces(http):
    for fields in ({"seed": 0}, {}):
        image = upscale(http, **fields)
        assert 0 < image["seed"] <= 2**32 - 1
    again = upscale(http, seed=image["seed"])
    assert np.array_equal(pixels(image["url"]), pixels(again["url"]))


def test_nsfw_flag_comes_from_the_safety_checker(http):
    assert upscale(http, model_id="test/x4-flagged", seed=1)["nsfw"] is True
    assert upscale(http, model_id="test/x4-flagged", seed=1, safety_check=False)["nsfw"] is False


def test_inputs_over_max_upscale_input_pixels_get_400(http):
    response = post_image(http, "/upscale", png_bytes(80, 64), prompt="x")
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "msg": "The uploaded image declares 80x64 = 5120 pixels, over the limit "
            "ADAPTER_MAX_UPSCALE_INPUT_PIXELS=4096."
        }
    }


def test_a_gone_client_stops_the_upscale_between_steps(tiny_upscaler):
    import torch

    from functions.cancel import GenerationCancelled
    from functions.upscale import Upscale
    from tests.support.livepeer_multipart import noise_image

    upscaler = Upscale.load(tiny_upscaler, device=torch.device("cpu"), dtype=torch.float32)
    steps_seen = []

    def should_stop():
        steps_seen.append(True)
        return True

    with pytest.raises(GenerationCancelled):
        upscaler.generate(
            prompt="x", image=noise_image(), num_inference_steps=3, should_stop=should_stop
        )
    assert len(steps_seen) == 1
