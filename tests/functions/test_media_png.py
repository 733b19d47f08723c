"""The PNG data URLs: lossless for every mode a pipeline returns, and valid PNG files."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from bench.images import IMAGE_KINDS
from functions.media import (
    encode_png,
    image_png,
    pillow_png_data_url,
    png_data_url,
    png_data_urls,
)


def decode_data_url(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    png = base64.b64decode(url[len(prefix) :], validate=True)
    Image.open(io.BytesIO(png)).verify()  # chunk CRCs and structure
    return Image.open(io.BytesIO(png))


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
@pytest.mark.parametrize(("height", "width"), [(64, 48), (1, 1), (3, 7), (37, 129)])
def test_rgb_round_trip_is_exact(kind, height, width):
    pixels = IMAGE_KINDS[kind](height, width, 3)
    decoded = decode_data_url(png_data_url(Image.fromarray(pixels)))
    assert decoded.mode == "RGB"
    assert decoded.size == (width, height)
    np.testing.assert_array_equal(np.asarray(decoded), pixels)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_every_direct_mode_round_trips(mode):
    rng = np.random.default_rng(1)
    channels = len(mode)
    shape = (33, 65) if channels == 1 else (33, 65, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image = Image.fromarray(pixels, mode=mode)
    decoded = decode_data_url(png_data_url(image))
    assert decoded.mode == mode
    np.testing.assert_array_equal(np.asarray(decoded), pixels)


def test_other_modes_go_through_pillow_losslessly():
    palette_image = Image.fromarray(
        np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ).convert("P")
    decoded = decode_data_url(png_data_url(palette_image))
    assert decoded.mode == "P"
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(palette_image))
    assert decoded.getpalette() == palette_image.getpalette()


def test_arrays_are_encoded_directly():
    pixels = IMAGE_KINDS["photo-like"](40, 50, 4)
    grey = pixels[:, :, 0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(grey)))), grey)
    decoded = decode_data_url(png_data_url(pixels))
    np.testing.assert_array_equal(np.asarray(decoded), pixels)
    # A non-contiguous view (a crop) is encoded as its own pixels.
    crop = pixels[5:25, 10:40]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(crop)))), crop)


def test_same_pixels_as_the_runners_pillow_default():
    image = Image.fromarray(IMAGE_KINDS["generated-like"](96, 128, 5))
    ours = np.asarray(decode_data_url(png_data_url(image)))
    runner = np.asarray(decode_data_url(pillow_png_data_url(image)))
    np.testing.assert_array_equal(ours, runner)


def test_compresses_a_smooth_picture():
    # Not a timing: the output must be deflated, not stored (a smooth image shrinks a lot).
    pixels = IMAGE_KINDS["generated-like"](128, 128, 6)
    assert len(image_png(Image.fromarray(pixels))) < pixels.nbytes * 0.8


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 5), dtype=np.uint8), "channels"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "at least one pixel"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "channels"),
    ],
)
def test_refuses_what_it_cannot_write(pixels, message):
    with pytest.raises(ValueError, match=message):
        encode_png(pixels)


def test_several_images_encode_in_order():
    frames = [IMAGE_KINDS["noise"](16, 24, seed) for seed in range(5)]
    urls = png_data_urls([Image.fromarray(frame) for frame in frames])
    assert [np.asarray(decode_data_url(url)).tolist() for url in urls] == [
        frame.tolist() for frame in frames
    ]
    assert png_data_urls([]) == []
