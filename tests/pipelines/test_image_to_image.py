"""Image-to-image over real HTTP, as go-livepeer sends it, on tiny SD, SDXL and InstructPix2Pix."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.apps import make_app, model_entry, serve
from tests.support.images import decode, pixels
from tests.support.livepeer_multipart import encode, noise_image, png_bytes, post_image

FAMILIES = ("sd", "sdxl", "pix2pix")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_sd, tiny_sdxl, tiny_pix2pix, flagging_checker):
    tmp = tmp_path_factory.mktemp("image-to-image")
    entries = [
        model_entry("image-to-image", tiny_sd, "test/sd", runner={"default": True}),
        model_entry("image-to-image", tiny_sdxl, "test/sdxl"),
        model_entry("image-to-image", tiny_pix2pix, "test/pix2pix"),
        # A Turbo model by its name: guidance is forced to 0 whatever the request says.
        model_entry("image-to-image", tiny_sd, "test/sd-turbo"),
        model_entry(
            "image-to-image",
            tiny_sd,
            "test/sd-flagged",
            runner={"safety_checker": str(flagging_checker)},
        ),
    ]
    with serve(make_app(tmp, entries, limits={"max_pixels_per_image": 96 * 96})) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def transform(http, model_id, image=None, **fields):
    body = {"prompt": "make it blue", "model_id": model_id, "num_inference_steps": 2, **fields}
    response = post_image(http, "/image-to-image", png_bytes() if image is None else image, **body)
    assert response.status_code == 200, response.text
    return response.json()["images"]


@pytest.mark.parametrize("family", FAMILIES)
def test_returns_one_png_per_image_of_the_input_size_with_consecutive_seeds(http, family):
    images = transform(
        http,
        f"test/{family}",
        seed=1234,
        num_images_per_prompt=3,
        strength=0.8,
        guidance_scale=7.5,
        image_guidance_scale=1.5,
        safety_check=True,
    )
    assert [image["seed"] for image in images] == [1234, 1235, 1236]
    assert [image["nsfw"] for image in images] == [False, False, False]
    for image in images:
        assert set(image) == {"url", "seed", "nsfw"}
        assert decode(image["url"]).size == (64, 48)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_image_and_each_image_reproducible_alone(http, family):
    model = f"test/{family}"
    first = transform(http, model, seed=7)[0]
    again = transform(http, model, seed=7)[0]
    other = transform(http, model, seed=8)[0]
    assert np.array_equal(pixels(first["url"]), pixels(again["url"]))
    assert not np.array_equal(pixels(first["url"]), pixels(other["url"]))
    batch = transform(http, model, seed=7, num_images_per_prompt=2)
    # Batched and single convolutions may round differently by a level or two, nothing more.
    assert np.abs(pixels(batch[1]["url"]) - pixels(other["url"])).max() <= 2


def test_without_seed_a_random_one_is_reported_and_reproduces(http):
    image = transform(http, "test/sd")[0]
    assert 0 <= image["seed"] <= 2**32 - 1
    again = transform(http, "test/sd", seed=image["seed"])[0]
    assert np.array_equal(pixels(image["url"]), pixels(again["url"]))


def test_the_input_image_steers_the_output(http):
    one = transform(http, "test/sd", image=png_bytes(seed=1), seed=3)[0]
    other = transform(http, "test/sd", image=png_bytes(seed=2), seed=3)[0]
    assert not np.array_equal(pixels(one["url"]), pixels(other["url"]))


def test_strength_applies_to_img2img_and_image_guidance_to_pix2pix(http):
    def differs(model, field, low, high):
        a = transform(http, model, seed=5, **{field: low})[0]
        b = transform(http, model, seed=5, **{field: high})[0]
        return not np.array_equal(pixels(a["url"]), pixels(b["url"]))

    assert differs("test/sd", "strength", 0.5, 1.0)
    assert differs("test/pix2pix", "image_guidance_scale", 1.0, 3.0)
    # Each field is ignored where the other family's field applies.
    assert not differs("test/pix2pix", "strength", 0.5, 1.0)
    assert not differs("test/sd", "image_guidance_scale", 1.0, 3.0)


def test_turbo_models_ignore_the_requested_guidance(http):
    def image(model, guidance):
        return pixels(transform(http, model, seed=9, guidance_scale=guidance)[0]["url"])

    assert np.array_equal(image("test/sd-turbo", 1.0), image("test/sd-turbo", 9.0))
    assert not np.array_equal(image("test/sd", 1.0), image("test/sd", 9.0))


def test_output_follows_the_input_size_rounded_down_to_multiples_of_8(http):
    image = transform(http, "test/sdxl", image=encode(noise_image(70, 53)), seed=1)[0]
    assert decode(image["url"]).size == (64, 48)


def test_exif_orientation_turns_the_output(http):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    upright = encode(noise_image(64, 48), "JPEG", exif=exif)
    assert decode(transform(http, "test/sd", image=upright, seed=1)[0]["url"]).size == (48, 64)


def test_nsfw_flags_come_from_the_safety_checker_and_can_be_skipped(http):
    flagged = transform(http, "test/sd-flagged", seed=2, num_images_per_prompt=2)
    assert [image["nsfw"] for image in flagged] == [True, True]
    unchecked = transform(http, "test/sd-flagged", seed=2, safety_check=False)
    assert unchecked[0]["nsfw"] is False


def test_request_checks_give_400_with_the_contract_body(http):
    def refused(image=None, **fields):
        body = {"prompt": "x", "model_id": "test/sd", **fields}
        response = post_image(http, "/image-to-image", image or png_bytes(), **body)
        assert response.status_code == 400, response.text
        return response.json()["detail"]["msg"]

    assert refused(strength=1.5) == "strength must be between 0 and 1, got 1.5."
    assert "over the limit ADAPTER_MAX_PIXELS_PER_IMAGE=9216" in refused(png_bytes(128, 96))
    assert refused(png_bytes(6, 40)) == "The image must be at least 16x16 pixels, got 6x40."
    assert "ADAPTER_MAX_IMAGES_PER_REQUEST=" in refused(num_images_per_prompt=9)
    assert "LoRAs are not supported" in refused(loras='{"a/b": 1.0}')
    assert "at most 1" in refused(prompt="a | b")
