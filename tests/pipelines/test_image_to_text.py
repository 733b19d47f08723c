"""Image-to-text over real HTTP, as go-livepeer sends it, on a tiny BLIP captioner loaded with
from_pretrained (random weights: the captions are gibberish, their shape and bounds are not)."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from functions.cancel import GenerationCancelled
from functions.image_to_text import ImageCaptioner
from functions.tiny.caption_speech import build_tiny_blip, build_tiny_vits
from tests.support.apps import make_app, model_entry, running_client, serve
from tests.support.livepeer_multipart import (
    encode,
    go_multipart,
    noise_image,
    png_bytes,
    png_header_claiming,
    post_image,
)
from tests.support.runner_spec import assert_contract_error

TOKEN = "i2t-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_CAPTION_TOKENS = 12


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    return build_tiny_blip(tmp_path_factory.mktemp("models") / "tiny-blip")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_blip):
    app = make_app(
        tmp_path_factory.mktemp("i2t"),
        [model_entry("image-to-text", tiny_blip, "test/tiny-blip")],
        auth_token=TOKEN,
        limits={"max_caption_tokens": MAX_CAPTION_TOKENS, "max_input_pixels": 256 * 256},
    )
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120, headers=AUTH) as client:
        yield client


@pytest.fixture(scope="module")
def local(tiny_blip):
    """The same model loaded in this process, with the service's caption bound."""
    cpu, float32 = torch.device("cpu"), torch.float32
    return ImageCaptioner.load(
        tiny_blip, device=cpu, dtype=float32, max_new_tokens=MAX_CAPTION_TOKENS
    )


def caption(http, image: bytes | None = None, **fields) -> str:
    response = post_image(http, "/image-to-text", png_bytes() if image is None else image, **fields)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"text"} and isinstance(body["text"], str)
    return str(body["text"])


def generated_ids(captioner, image, prompt=""):
    """The token ids `generate` returned for one caption."""
    seen = []
    generate = captioner.model.generate

    def recording(**kwargs):
        seen.append(generate(**kwargs))
        return seen[-1]

    captioner.model.generate = recording
    try:
        text = captioner.caption(image, prompt)
    finally:
        del captioner.model.generate
    return text, seen[0][0].tolist()


# --- answers -------------------------------------------------------------------------------


def test_a_caption_is_the_models_greedy_text_of_at_most_the_token_bound(http, local):
    text, ids = generated_ids(local, noise_image())
    # [DEC], then at most MAX_CAPTION_TOKENS new tokens (random weights rarely end sooner).
    assert ids[0] == local.model.config.text_config.bos_token_id
    assert 1 <= len(ids) - 1 <= MAX_CAPTION_TOKENS
    assert text and caption(http) == text


def test_a_prompt_is_continued_conditional_captioning(http, local):
    text, ids = generated_ids(local, noise_image(), "A photo of")
    prompt_ids = local.processor.tokenizer("a photo of").input_ids[1:-1]
    assert ids[1 : 1 + len(prompt_ids)] == prompt_ids
    assert 1 <= len(ids) - 1 - len(prompt_ids) <= MAX_CAPTION_TOKENS
    # BLIP's uncased tokenizer writes the prompt back in lower case, then the caption.
    assert text.startswith("a photo of")
    assert caption(http, prompt="A photo of") == text


def test_greedy_captions_are_reproducible_and_depend_on_the_image_and_prompt(http):
    first = caption(http, png_bytes(seed=1))
    assert caption(http, png_bytes(seed=1)) == first
    others = {caption(http, png_bytes(seed=s)) for s in (2, 3, 4)} | {
        caption(http, png_bytes(seed=1), prompt="a painting")
    }
    assert others != {first}


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(lambda: encode(noise_image(), "JPEG", quality=90), id="jpeg"),
        pytest.param(lambda: encode(noise_image().convert("RGBA"), "WEBP"), id="webp-rgba"),
        pytest.param(lambda: encode(noise_image().convert("P")), id="palette"),
        pytest.param(lambda: png_bytes(300, 16), id="wide"),
    ],
)
def test_every_image_kind_the_other_pipelines_take_is_captioned(http, image):
    assert caption(http, image(), filename="in.bin")


def test_the_model_named_or_the_default_answers(http):
    assert caption(http, model_id="test/tiny-blip")
    response = post_image(http, "/image-to-text", png_bytes(), model_id="other/blip")
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("Model other/blip is not served")


def test_units_are_the_input_images_pixels_as_go_livepeer_debits(http):
    before = units(http)
    caption(http, png_bytes(40, 30))
    assert units(http) - before == 40 * 30


def units(http) -> float:
    text = http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "runner_units_total" and sample.labels == {
                "pipeline": "image-to-text",
                "model": "test/tiny-blip",
            }:
                return float(sample.value)
    return 0.0


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "msg"),
    [
        (b"", "The uploaded image file is empty."),
        (png_bytes()[:60], "The uploaded image file is corrupt or truncated."),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "The uploaded image file is corrupt or truncated."),
        (b"GIF89a, but not really", "The uploaded image file is corrupt or truncated."),
    ],
)
def test_empty_and_corrupt_images_get_400(http, data, msg):
    response = post_image(http, "/image-to-text", data)
    assert response.status_code == 400
    assert response.json() == {"detail": {"msg": msg}}


def test_a_file_that_is_no_image_gets_400_naming_the_formats(http):
    response = post_image(http, "/image-to-text", b"hello, this is text", filename="a.png")
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith(
        "The uploaded image file is not an image this runner reads"
    )


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(http):
    response = post_image(http, "/image-to-text", png_header_claiming(300, 300))
    assert response.status_code == 400
    msg = response.json()["detail"]["msg"]
    assert "300x300" in msg and "ADAPTER_MAX_INPUT_PIXELS=65536" in msg


def test_an_image_under_16_pixels_a_side_gets_400(http):
    response = post_image(http, "/image-to-text", png_bytes(15, 40))
    assert response.status_code == 400
    assert response.json() == {
        "detail": {"msg": "The image must be at least 16x16 pixels, got 15x40."}
    }


def test_a_prompt_longer_than_the_models_positions_gets_400(http):
    # The tiny model reads 64 positions; each letter of an unknown word is a token.
    response = post_image(http, "/image-to-text", png_bytes(), prompt="xq " * 40)
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("The prompt is ")
    assert "this model reads at most 63" in response.json()["detail"]["msg"]


def test_a_missing_image_is_fastapis_422(http):
    response = http.post("/image-to-text", data={"prompt": "x"})
    assert response.status_code == 422
    assert_contract_error(response, "/image-to-text")


def test_a_body_over_the_byte_limit_gets_the_declared_413(tmp_path, tiny_blip):
    app = make_app(
        tmp_path,
        [model_entry("image-to-text", tiny_blip, "test/tiny-blip")],
        limits={"max_request_bytes": 4096},
    )
    with running_client(app) as client:
        response = post_image(client, "/image-to-text", png_bytes(64, 64))
        assert response.status_code == 413
        assert response.json() == {
            "detail": {"msg": "Request body is over the limit ADAPTER_MAX_REQUEST_BYTES=4096."}
        }
        assert_contract_error(response, "/image-to-text")
        assert post_image(client, "/image-to-text", png_bytes(16, 16)).status_code == 200


def test_the_401_is_worded_as_the_runners_without_its_final_period(base_url):
    body, headers = go_multipart(png_bytes(), "in.png")
    for auth in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(
            f"{base_url}/image-to-text", content=body, headers={**headers, **auth}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": {"msg": "Invalid bearer token"}}


def test_every_refusal_is_a_declared_status_with_the_contract_body(http):
    for data in (b"", png_bytes(8, 8), b"not an image"):
        assert_contract_error(post_image(http, "/image-to-text", data), "/image-to-text")


# --- the model -----------------------------------------------------------------------------


def test_a_gone_client_stops_the_caption_at_its_next_token(local):
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) > 2

    with pytest.raises(GenerationCancelled):
        local.caption(noise_image(), "", should_stop=should_stop)
    assert len(asked) <= 4


def test_a_folder_that_holds_no_blip_model_is_refused_at_load(tmp_path):
    folder = build_tiny_vits(tmp_path / "vits")
    with pytest.raises(ValueError, match="image-to-text serves BLIP captioning models"):
        ImageCaptioner.load(
            folder, device=torch.device("cpu"), dtype=torch.float32, max_new_tokens=4
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        ImageCaptioner.load(
            tmp_path / "empty", device=torch.device("cpu"), dtype=torch.float32, max_new_tokens=4
        )


def test_the_tiny_model_saves_a_real_blip_layout(tiny_blip):
    config = json.loads((tiny_blip / "config.json").read_text())
    assert config["model_type"] == "blip"
    assert config["architectures"] == ["BlipForConditionalGeneration"]
    assert (tiny_blip / "tokenizer.json").is_file()
