"""Inputs a model would crash on (or answer with a raw library error) are refused before any
model sees them: a 400 whose message names the field, or the limit and its value.

Every model here is cold and stays cold: the refusals come from `prepare`, before a request
takes a slot, so no model is loaded (health stays IDLE).
"""

from __future__ import annotations

import json

import pytest

from tests.support.apps import make_app, model_entry, running_client
from tests.support.livepeer_multipart import png_bytes, post_image

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_sd, tiny_svd, tiny_upscaler, tiny_llm):
    entries = [
        model_entry(pipeline, path, f"test/{pipeline}", warm=False)
        for pipeline, path in (
            ("text-to-image", tiny_sd),
            ("image-to-image", tiny_sd),
            ("image-to-video", tiny_svd),
            ("upscale", tiny_upscaler),
            ("llm", tiny_llm),
        )
    ]
    with running_client(make_app(tmp_path_factory.mktemp("refused"), entries)) as c:
        yield c
        # Nothing was refused by a model: none was ever loaded.
        assert c.get("/health").json() == {"status": "IDLE"}


def refused(response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["detail"]["msg"]


def raw_json(client, route: str, text: str):
    """POST a JSON body written by hand: a lone surrogate travels as a `\\ud800` escape, which
    JSON allows and an encoder refuses to write."""
    return client.post(route, content=text.encode("ascii"), headers=JSON)


# --- image inputs: the smallest size, before the model -----------------------------------------


@pytest.mark.parametrize(
    ("route", "fields"),
    [
        # SVD's image encoder crashed on it: "Padding size should be less than the
        # corresponding input dimension".
        ("/image-to-video", {"height": 48, "width": 64}),
        ("/image-to-image", {"prompt": "x"}),
        ("/upscale", {"prompt": "x"}),
    ],
)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 2)])
def test_an_image_under_the_smallest_size_is_a_400_naming_the_minimum(
    client, route, fields, width, height
):
    response = post_image(client, route, png_bytes(width, height), **fields)
    assert refused(response) == (f"The image must be at least 16x16 pixels, got {width}x{height}.")


def test_a_text_to_image_size_under_the_minimum_is_a_clear_400(client):
    # 8x8 reached the UNet, whose 400 was torch's "Expected more than 1 value per channel".
    response = client.post("/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
    assert refused(response) == "width and height must be at least 16, got 8x8."


def test_a_video_size_under_the_minimum_is_a_clear_400(client):
    response = post_image(client, "/image-to-video", png_bytes(), height=8, width=64)
    assert refused(response) == "width and height must be at least 16, got 64x8."


# --- text no tokenizer takes ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_lone_surrogate_in_a_prompt_is_a_400_naming_the_field(client, field):
    body = {"prompt": "a lighthouse", "width": 64, "height": 48, field: "a \\ud800 b"}
    text = json.dumps(body).replace("\\\\ud800", "\\ud800")
    assert "\\ud800" in text
    msg = refused(raw_json(client, "/text-to-image", text))
    assert msg.startswith(f"{field} is not valid text: it holds a lone UTF-16 surrogate")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_lone_surrogate_in_an_llm_message_is_a_400_naming_it(client, stream):
    text = (
        '{"messages": [{"role": "system", "content": "be brief"}, '
        '{"role": "user", "content": "hi \\udfff"}], "max_tokens": 8, '
        f'"stream": {json.dumps(stream)}}}'
    )
    response = raw_json(client, "/llm", text)
    assert response.headers["content-type"] == "application/json"
    msg = refused(response)
    assert msg.startswith("messages[1].content is not valid text: it holds a lone UTF-16")


# --- limits name the variable that raises them, sizes print as width x height -----------------


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        (
            "/text-to-image",
            {"prompt": "x", "width": 2048, "height": 1024},
            "2048x1024 is 2097152 pixels, over the limit ADAPTER_MAX_PIXELS_PER_IMAGE=1048576.",
        ),
        (
            "/text-to-image",
            {"prompt": "x", "num_images_per_prompt": 9},
            "num_images_per_prompt=9 is over the limit ADAPTER_MAX_IMAGES_PER_REQUEST=4.",
        ),
        (
            "/text-to-image",
            {"prompt": "x", "num_inference_steps": 101},
            "num_inference_steps=101 is over the limit ADAPTER_MAX_INFERENCE_STEPS=100.",
        ),
        (
            "/llm",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000},
            "max_tokens=5000 is over the limit ADAPTER_MAX_LLM_TOKENS=4096.",
        ),
    ],
)
def test_each_limit_names_its_environment_variable(client, route, body, message):
    assert refused(client.post(route, json=body)) == message


def test_an_image_over_its_pipelines_pixel_limit_names_the_variable_and_width_x_height(client):
    response = post_image(client, "/upscale", png_bytes(1024, 600), prompt="x")
    assert refused(response) == (
        "The uploaded image declares 1024x600 = 614400 pixels, over the limit "
        "ADAPTER_MAX_UPSCALE_INPUT_PIXELS=262144."
    )
