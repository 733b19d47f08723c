"""image-to-text and text-to-speech forwarded by the http backend to a runner over real sockets
(this service with the local backend): the same answers as the runner's own, the adapter's
limits applied before forwarding, the runner's refusals passed through."""

from __future__ import annotations

import httpx
import pytest

from functions.tiny.caption_speech import build_tiny_blip, build_tiny_vits
from tests.support.apps import make_app, model_entry, serve
from tests.support.livepeer_multipart import go_multipart, png_bytes

TOKEN = "upstream-secret"


@pytest.fixture(scope="module")
def runner_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    entries = [
        model_entry("image-to-text", build_tiny_blip(root / "blip"), "test/tiny-blip"),
        model_entry("text-to-speech", build_tiny_vits(root / "vits"), "test/tiny-vits"),
    ]
    with serve(make_app(root, entries, auth_token=TOKEN)) as url:
        yield url


@pytest.fixture(scope="module")
def adapter_url(tmp_path_factory, runner_url):
    entries = [
        {
            "pipeline": pipeline,
            "model_id": model_id,
            "runner": {"upstream_url": runner_url, "upstream_token": TOKEN},
        }
        for pipeline, model_id in (
            ("image-to-text", "test/tiny-blip"),
            ("text-to-speech", "test/tiny-vits"),
        )
    ]
    app = make_app(
        tmp_path_factory.mktemp("adapter"),
        entries,
        backend="http",
        upstream_poll_interval_s=0.1,
        limits={"max_tts_chars": 10},
    )
    with serve(app) as url:
        yield url


def test_a_caption_through_the_adapter_equals_the_runners(runner_url, adapter_url):
    body, headers = go_multipart(png_bytes(64, 48), "in.png", prompt="a photo of")
    direct = httpx.post(
        f"{runner_url}/image-to-text",
        content=body,
        headers={**headers, "Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    via = httpx.post(f"{adapter_url}/image-to-text", content=body, headers=headers, timeout=60)
    assert direct.status_code == via.status_code == 200, via.text
    assert via.json() == direct.json()
    assert set(via.json()) == {"text"}


def test_speech_is_forwarded_and_the_adapters_limit_applies_first(adapter_url):
    ok = httpx.post(f"{adapter_url}/text-to-speech", json={"text": "hello"}, timeout=60)
    assert ok.status_code == 200, ok.text
    assert ok.json()["audio"]["url"].startswith("data:audio/wav;base64,")
    long = httpx.post(f"{adapter_url}/text-to-speech", json={"text": "a" * 11}, timeout=60)
    assert long.status_code == 400
    assert "ADAPTER_MAX_TTS_CHARS=10" in long.json()["detail"]["msg"]


def test_the_runners_own_refusal_passes_through(adapter_url):
    # Checked only where the model is: nothing in 'ü!' is in the tiny VITS alphabet.
    response = httpx.post(f"{adapter_url}/text-to-speech", json={"text": "ü!"}, timeout=60)
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("The text has no character this model")
