"""Every served pipeline through a proxy that behaves as go-livepeer's single-shot Live Runner
proxy, in front of the adapter as a real process, registered by its own printed runners.json."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live_runner.support import AdapterProcess, LivepeerProxy
from tests.support.apps import llm_entry, model_entry, sd_entry, serve, whisper_entry
from tests.support.audio import wav
from tests.support.images import decode
from tests.support.livepeer_multipart import go_multipart, png_bytes

USD_PER_PIXEL = 1.9073484e-08
LABELS = {
    "text-to-image": "text-to-image--test--tiny-sd",
    "image-to-image": "image-to-image--test--tiny-sd-img2img",
    "image-to-video": "image-to-video--test--tiny-svd",
    "upscale": "upscale--test--tiny-upscaler",
    "audio-to-text": "audio-to-text--test--tiny-whisper",
    "llm": "llm--test--tiny-llm",
}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory, tiny_sd, tiny_svd, tiny_upscaler, tiny_whisper, tiny_llm
) -> Iterator[tuple[AdapterProcess, LivepeerProxy, str]]:
    priced = {"price_per_unit": USD_PER_PIXEL, "currency": "USD"}
    entries = [
        sd_entry(tiny_sd, **priced),
        model_entry("image-to-image", tiny_sd, "test/tiny-sd-img2img", **priced),
        model_entry(
            "image-to-video", tiny_svd, "test/tiny-svd", **priced, runner={"num_inference_steps": 2}
        ),
        model_entry(
            "upscale",
            tiny_upscaler,
            "test/tiny-upscaler",
            **priced,
            runner={"num_inference_steps": 2},
        ),
        whisper_entry(tiny_whisper, price_per_unit=2e-08, currency="USD"),
        # No queue: a second request while one runs is refused at once (503).
        llm_entry(tiny_llm, price_per_unit=8e-08, currency="USD", runner={"max_queue": 0}),
    ]
    workdir = tmp_path_factory.mktemp("live-proxy")
    with AdapterProcess(workdir, entries) as adapter:
        printed = adapter.registration()
        assert printed.returncode == 0, printed.stderr
        document = json.loads(printed.stdout)
        # The orchestrator's capacity for llm above what the adapter runs: its own 503 shows.
        for entry in document["runners"]:
            if entry["app"].startswith("llm/"):
                entry["capacity"] = 3
        proxy = LivepeerProxy(document, poll_s=0.3)
        with serve(proxy, settle=False) as proxy_url:  # type: ignore[arg-type]
            deadline = time.monotonic() + 180
            while not all(r.healthy for r in proxy.runners.values()):
                assert time.monotonic() < deadline, adapter.log()
                time.sleep(0.2)
            yield adapter, proxy, proxy_url


def app_url(proxy_url: str, pipeline: str) -> str:
    """What a client of the app calls: the discovery URL (ending in /app) plus the route."""
    return f"{proxy_url}/apps/{LABELS[pipeline]}/app/{pipeline}"


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def test_text_to_image_json(stack):
    _adapter, proxy, url = stack
    response = httpx.post(
        app_url(url, "text-to-image"),
        timeout=120,
        json={"prompt": "a red square", "width": 64, "height": 48, "num_inference_steps": 2},
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["images"][0]["url"]).size == (64, 48)
    # Health answered 503 while the cold model loaded for this request; the polls after its
    # answer (two, so one started after it) find it healthy again.
    codes = proxy.runners[LABELS["text-to-image"]].health_codes
    seen = len(codes)
    deadline = time.monotonic() + 30
    while len(codes) < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert codes[seen + 1 :] and all(code == 200 for code in codes[seen + 1 :])


def test_image_to_image_multipart_streamed_in_chunks_and_as_json_base64(stack):
    _adapter, _proxy, url = stack
    image = png_bytes()
    body, headers = go_multipart(image, prompt="x", seed=1, num_inference_steps=2)

    def chunked() -> Iterator[bytes]:  # a request body of unknown length, sent in pieces
        for start in range(0, len(body), 700):
            yield body[start : start + 700]

    response = httpx.post(
        app_url(url, "image-to-image"), content=chunked(), headers=headers, timeout=120
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["images"][0]["url"]).size == (64, 48)

    response = httpx.post(
        app_url(url, "image-to-image"),
        timeout=120,
        json={
            "prompt": "x",
            "seed": 1,
            "num_inference_steps": 2,
            "image": base64.b64encode(image).decode(),
        },
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["images"][0]["url"]).size == (64, 48)


def test_image_to_video_json_data_url(stack):
    _adapter, _proxy, url = stack
    response = httpx.post(
        app_url(url, "image-to-video"),
        timeout=180,
        json={"image": data_url(png_bytes(), "image/png"), "height": 48, "width": 64},
    )
    assert response.status_code == 200, response.text
    assert [len(video) for video in response.json()["frames"]] == [3]


def test_upscale_json_base64(stack):
    _adapter, _proxy, url = stack
    response = httpx.post(
        app_url(url, "upscale"),
        timeout=120,
        json={"prompt": "x", "image": base64.b64encode(png_bytes()).decode()},
    )
    assert response.status_code == 200, response.text
    assert decode(response.json()["images"][0]["url"]).size == (256, 192)


def test_audio_to_text_multipart_and_json(stack):
    _adapter, _proxy, url = stack
    audio = wav(1.0)
    body, headers = go_multipart(audio, "hello.wav", field="audio")
    response = httpx.post(app_url(url, "audio-to-text"), content=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    assert "text" in response.json()
    response = httpx.post(
        app_url(url, "audio-to-text"),
        timeout=120,
        json={
            "audio": data_url(audio, "audio/wav"),
            "return_timestamps": False,
            "metadata": {"job": "a"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["chunks"] == [] or "text" in response.json()


def test_llm_whole_and_streamed_as_server_sent_events(stack):
    _adapter, _proxy, url = stack
    messages = [{"role": "user", "content": "hi"}]
    response = httpx.post(
        app_url(url, "llm"), timeout=120, json={"messages": messages, "max_tokens": 4}
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "test/tiny-llm"

    events, arrived = [], []
    with httpx.stream(
        "POST",
        app_url(url, "llm"),
        timeout=120,
        # Greedy, so no early EOS can leave only the final chunk.
        json={"messages": messages, "max_tokens": 64, "temperature": 0, "stream": True},
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
                arrived.append(time.monotonic())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) > 1
    assert all(chunk["choices"][0]["delta"]["role"] == "assistant" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"]


def test_overload_is_503_with_retry_after_and_the_contract_body_through_the_proxy(stack):
    _adapter, _proxy, url = stack
    first_token = threading.Event()
    ended = threading.Event()

    def long_stream() -> None:
        # Greedy: the tiny model then never samples EOS, so the stream runs its 1024 tokens
        # (seconds on CPU) instead of ending at a random early EOS before the probe arrives.
        with httpx.stream(
            "POST",
            app_url(url, "llm"),
            timeout=120,
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1024,
                "temperature": 0,
                "stream": True,
            },
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    first_token.set()
        ended.set()

    worker = threading.Thread(target=long_stream)
    worker.start()
    assert first_token.wait(timeout=60), "the long stream never produced a token"
    refused = httpx.post(
        app_url(url, "llm"),
        timeout=30,
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    stream_was_running = not ended.is_set()
    worker.join(timeout=120)
    assert stream_was_running, "the long stream ended before the probe was answered"
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"].isdigit()
    assert set(refused.json()) == {"detail"} and "capacity" in refused.json()["detail"]["msg"]


def test_the_bare_app_url_is_redirected_and_the_app_root_names_its_route(stack):
    _adapter, _proxy, url = stack
    label = LABELS["text-to-image"]
    bare = httpx.post(f"{url}/apps/{label}/app", json={})
    assert bare.status_code == 301
    root = httpx.post(f"{url}/apps/{label}/app/", json={})
    assert root.status_code == 404
    assert "POST /text-to-image" in root.json()["detail"]["msg"]


def test_bad_bodies_keep_the_contract_statuses(stack):
    _adapter, _proxy, url = stack
    not_base64 = httpx.post(app_url(url, "upscale"), json={"prompt": "x", "image": "%%%"})
    assert not_base64.status_code == 400
    assert "base64" in not_base64.json()["detail"]["msg"]
    other_model = httpx.post(
        app_url(url, "text-to-image"), json={"prompt": "x", "model_id": "someone/else"}
    )
    assert other_model.status_code == 400
    assert "test/tiny-sd" in other_model.json()["detail"]["msg"]
    missing = httpx.post(app_url(url, "text-to-image"), json={"width": 64})
    assert missing.status_code == 422
    text = httpx.post(
        app_url(url, "text-to-image"), content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 415


def test_health_answers_in_time_during_a_long_inference(stack):
    _adapter, proxy, _url = stack
    runner = proxy.runners[LABELS["text-to-image"]].entry
    outcome: dict[str, Any] = {}

    def long_job() -> None:
        started = time.monotonic()
        outcome["response"] = httpx.post(
            runner["runner_url"] + "/text-to-image",
            timeout=300,
            json={"prompt": "x", "width": 256, "height": 256, "num_inference_steps": 60},
        )
        outcome["seconds"] = time.monotonic() - started

    job = threading.Thread(target=long_job)
    job.start()
    timings = []
    while job.is_alive():
        started = time.monotonic()
        health = httpx.get(runner["health_url"], timeout=3)  # the orchestrator's own budget
        timings.append(time.monotonic() - started)
        assert health.status_code == 200
        time.sleep(0.2)
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert outcome["seconds"] > 3, "the job must outlast the orchestrator's 3 s health timeout"
    assert len(timings) > 5 and max(timings) < 3, timings
