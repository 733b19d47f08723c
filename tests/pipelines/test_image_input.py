"""Defensive decoding of uploaded images: the shared decoder, and every file-taking route's 4xx."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from functions.image_input import ImageInputError, ImageTooLargeError, decode_image
from tests.support.apps import make_app, model_entry, serve
from tests.support.livepeer_multipart import (
    encode,
    noise_image,
    png_bytes,
    png_header_claiming,
    post_image,
    wav_bytes,
)

LIMIT = 4096 * 4096


def rgb_at(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return image.getpixel((x, y))


# --- the decoder ---------------------------------------------------------------------------


def test_png_decodes_to_the_same_rgb_pixels():
    source = noise_image(64, 48)
    image = decode_image(encode(source), max_pixels=LIMIT)
    assert (image.mode, image.size) == ("RGB", (64, 48))
    assert np.array_equal(np.asarray(image), np.asarray(source))


def test_transparent_pixels_show_over_white_in_every_alpha_mode():
    rgba = Image.new("RGBA", (16, 8), (200, 10, 10, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 8))
    image = decode_image(encode(rgba), max_pixels=LIMIT)
    assert rgb_at(image, 0, 0) == (255, 255, 255)
    assert rgb_at(image, 12, 4) == (200, 10, 10)

    grey_alpha = Image.new("LA", (8, 8), (40, 0))
    assert rgb_at(decode_image(encode(grey_alpha), max_pixels=LIMIT), 0, 0) == (255, 255, 255)

    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    gif = encode(palette, "GIF", transparency=0)
    assert rgb_at(decode_image(gif, max_pixels=LIMIT), 0, 0) == (0, 0, 255)
    transparent_gif = encode(palette, "GIF", transparency=1)
    assert rgb_at(decode_image(transparent_gif, max_pixels=LIMIT), 0, 0) == (255, 255, 255)


def test_cmyk_jpeg_and_palette_images_become_rgb():
    cmyk = decode_image(
        encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), max_pixels=LIMIT
    )
    assert cmyk.mode == "RGB"
    red, green, blue = rgb_at(cmyk, 8, 8)
    assert red > 200 and green < 60 and blue < 60
    palette = noise_image(16, 16).convert("P")
    assert decode_image(encode(palette), max_pixels=LIMIT).mode == "RGB"


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16).repeat(4, axis=0)
    image = decode_image(encode(Image.fromarray(values)), max_pixels=LIMIT)
    assert [rgb_at(image, x, 0)[0] for x in range(3)] == [0, 128, 255]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    image = decode_image(encode(floats, "TIFF"), max_pixels=LIMIT)
    assert [rgb_at(image, x, 0)[0] for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied():
    source = Image.new("RGB", (64, 48), (255, 0, 0))
    source.paste((0, 0, 255), (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    image = decode_image(encode(source, "JPEG", exif=exif, quality=95), max_pixels=LIMIT)
    assert image.size == (48, 64)
    # The top-left corner moved to the top-right.
    assert rgb_at(image, 44, 3)[2] > 200 and rgb_at(image, 3, 3)[0] > 200


def test_an_animation_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    for fmt in ("GIF", "PNG", "WEBP"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
        assert Image.open(__import__("io").BytesIO(data)).n_frames == 2
        assert rgb_at(decode_image(data, max_pixels=LIMIT), 4, 4) == (255, 0, 0), fmt


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"just some text, not a picture\n", "not an image"),
        (wav_bytes(), "not an image"),
        # PostScript is an image to Pillow, which would run Ghostscript on it: never tried.
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "corrupt"),
        (png_bytes(64, 48)[:2000], "corrupt or truncated"),
        (encode(noise_image(64, 48), "JPEG")[:600], "corrupt or truncated"),
    ],
    ids=["empty", "text", "wav", "eps", "corrupt-png", "truncated-png", "truncated-jpeg"],
)
def test_unusable_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageInputError, match=message) as error:
        decode_image(data, max_pixels=LIMIT)
    assert not isinstance(error.value, ImageTooLargeError)


def test_declared_pixels_are_checked_before_decoding():
    with pytest.raises(ImageTooLargeError) as error:
        decode_image(png_header_claiming(5000, 4000), max_pixels=LIMIT, limit_name="max_x")
    assert str(error.value) == (
        f"The uploaded image declares 5000x4000 = 20000000 pixels, over the limit max_x={LIMIT}."
    )
    # Over Pillow's own bomb limit, its refusal is reported the same way.
    with pytest.raises(ImageTooLargeError, match=f"over the limit max_input_pixels={LIMIT}"):
        decode_image(png_header_claiming(100_000, 100_000), max_pixels=LIMIT)


# --- every file-taking route, over HTTP as go-livepeer sends ------------------------------

ROUTES = {
    # route: (fields go-livepeer sets, the pixel limit named for a too-large input)
    "/image-to-image": ({"prompt": "a cat", "strength": 0.8}, "ADAPTER_MAX_PIXELS_PER_IMAGE"),
    "/image-to-video": ({"height": 64, "width": 64, "fps": 6}, "ADAPTER_MAX_INPUT_PIXELS"),
    "/upscale": ({"prompt": "a cat"}, "ADAPTER_MAX_UPSCALE_INPUT_PIXELS"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    # Cold models that were never built: a bad input must be refused before any model is used.
    entries = [
        {**model_entry(route[1:], tmp / "none", f"test/{route[1:]}"), "warm": False}
        for route in ROUTES
    ]
    app = make_app(tmp, entries, limits={"max_request_bytes": 64 * 1024})
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


BAD_FILES = {
    "empty": (b"", "input.png", "The uploaded image file is empty."),
    "corrupt": (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "input.png", "corrupt"),
    "truncated": (png_bytes(64, 48)[:3000], "input.png", "corrupt or truncated"),
    "text": (b"hello, I am a text file\n" * 10, "notes.txt", "not an image"),
    "wav": (wav_bytes(), "speech.wav", "not an image"),
}


@pytest.mark.parametrize("case", BAD_FILES)
@pytest.mark.parametrize("route", ROUTES)
def test_bad_files_get_400_with_the_contract_body(http, route, case):
    data, filename, message = BAD_FILES[case]
    response = post_image(http, route, data, filename=filename, **ROUTES[route][0])
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"} and set(body["detail"]) == {"msg"}
    assert message in body["detail"]["msg"]


@pytest.mark.parametrize("route", ROUTES)
def test_decompression_bombs_get_400_naming_the_limit(http, route):
    fields, limit_name = ROUTES[route]
    for width, height in ((100_000, 100_000), (5000, 4000)):
        response = post_image(http, route, png_header_claiming(width, height), **fields)
        assert response.status_code == 400, response.text
        assert f"over the limit {limit_name}=" in response.json()["detail"]["msg"]


@pytest.mark.parametrize("route", ROUTES)
def test_bodies_over_max_request_bytes_get_the_contract_body(http, route):
    big = png_bytes(160, 160)
    assert len(big) > 64 * 1024
    response = post_image(http, route, big, **ROUTES[route][0])
    assert response.status_code == 400  # a 413, answered as these routes declare
    assert response.json() == {
        "detail": {"msg": "Request body is over the limit ADAPTER_MAX_REQUEST_BYTES=65536."}
    }


def test_video_sizes_must_be_multiples_of_eight(http):
    for height, width in ((60, 64), (64, 1000 + 4)):
        response = post_image(http, "/image-to-video", png_bytes(), height=height, width=width)
        assert response.status_code == 400
        assert response.json() == {
            "detail": {"msg": f"width and height must be multiples of 8, got {width}x{height}."}
        }


def test_a_missing_file_is_a_validation_error(http):
    response = http.post("/upscale", data={"prompt": "x"})
    assert response.status_code == 422
