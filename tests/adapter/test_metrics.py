"""/metrics and the per-request log line, through the real app over the fake backend: units come
from what the adapter measured in the request, seconds from the time the backend took."""

from __future__ import annotations

import logging

from prometheus_client.parser import text_string_to_metric_families

from tests.support.apps import entry, running_client
from tests.support.audio import livepeer_form, wav
from tests.support.fake_backend import FakeBackend
from tests.support.livepeer_multipart import png_bytes, post_image

MODEL = "test/tiny-sd"
SD = entry("text-to-image", MODEL)


def samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"pipeline": "text-to-image", "model": MODEL, **extra}.items()))


def test_metrics_count_units_and_seconds_of_each_request(fake_app_factory, caplog):
    app = fake_app_factory([SD], FakeBackend(delay_s=0.01), auth_token="tok")
    with running_client(app) as client, caplog.at_level(logging.INFO, "adapter.requests"):
        body = {
            "prompt": "a lighthouse",
            "width": 64,
            "height": 48,
            "num_inference_steps": 1,
            "num_images_per_prompt": 2,
            "seed": 1,
        }
        auth = {"Authorization": "Bearer tok"}
        assert client.post("/text-to-image", json=body, headers=auth).status_code == 200
        too_big = {**body, "width": 4096, "height": 4096}
        assert client.post("/text-to-image", json=too_big, headers=auth).status_code == 400
        # /metrics needs no token, like the runner's.
        found = samples(client)

    assert found[("runner_requests_total", labels(status="200"))] == 1
    assert found[("runner_requests_total", labels(status="400"))] == 1
    # go-livepeer debits 64 x 48 x 2 for the request that succeeded, nothing for the refusal.
    assert found[("runner_units_total", labels())] == 64 * 48 * 2
    gpu_seconds = found[("runner_gpu_seconds_total", labels())]
    assert gpu_seconds >= 0.01
    assert found[("runner_inference_seconds_count", labels())] == 1
    assert found[("runner_inference_seconds_sum", labels())] == gpu_seconds
    assert found[("runner_queue_wait_seconds_count", labels())] == 1
    assert found[("runner_requests_in_flight", labels())] == 0

    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.requests"]
    assert len(lines) == 2
    assert lines[0].startswith(
        f"request pipeline=text-to-image model={MODEL} status=200 units=6144 gpu_seconds="
    )
    assert f"model={MODEL} status=400 units=- gpu_seconds=0.000" in lines[1]


def test_each_app_has_its_own_counters(fake_app_factory):
    with running_client(fake_app_factory([SD])) as first:
        body = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1}
        assert first.post("/text-to-image", json=body).status_code == 200
        assert samples(first)[("runner_units_total", labels())] == 64 * 64
    with running_client(fake_app_factory([SD])) as second:
        assert ("runner_units_total", labels()) not in samples(second)


def test_requests_for_models_not_served_are_counted_without_a_model(fake_app_factory):
    with running_client(fake_app_factory([SD])) as client:
        body = {"prompt": "x", "model_id": "other/model"}
        assert client.post("/text-to-image", json=body).status_code == 400
        found = samples(client)
    key = (
        "runner_requests_total",
        (("model", ""), ("pipeline", "text-to-image"), ("status", "400")),
    )
    assert found[key] == 1


def test_streamed_llm_requests_are_counted_once_the_stream_ends(fake_app_factory):
    app = fake_app_factory([entry("llm", "test/tiny-llm")], FakeBackend(delay_s=0.01))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    with running_client(app) as client:
        with client.stream("POST", "/llm", json=body) as response:
            assert response.status_code == 200
            assert response.read().decode().rstrip().endswith("data: [DONE]")
        found = samples(client)
    llm = tuple(sorted({"pipeline": "llm", "model": "test/tiny-llm"}.items()))
    assert found[("runner_requests_total", (*llm, ("status", "200")))] == 1
    # go-livepeer debits an LLM request's max_tokens.
    assert found[("runner_units_total", llm)] == 5
    assert found[("runner_gpu_seconds_total", llm)] >= 0.01
    assert found[("runner_requests_in_flight", llm)] == 0


def test_units_of_upload_pipelines_come_from_what_the_adapter_measured(fake_app_factory):
    entries = [
        entry("image-to-image", "m/i2i"),
        entry("image-to-video", "m/i2v"),
        entry("upscale", "m/up"),
        entry("audio-to-text", "m/a2t"),
    ]
    with running_client(fake_app_factory(entries)) as client:
        image = png_bytes(64, 48)
        assert (
            post_image(
                client,
                "/image-to-image",
                image,
                prompt="x",
                seed=1,
                num_inference_steps=1,
                num_images_per_prompt=2,
            ).status_code
            == 200
        )
        assert (
            post_image(
                client, "/image-to-video", image, height=48, width=64, num_inference_steps=1
            ).status_code
            == 200
        )
        assert (
            post_image(
                client, "/upscale", png_bytes(32, 24), prompt="x", num_inference_steps=1
            ).status_code
            == 200
        )
        body, headers = livepeer_form(wav(2.5), "clip.wav", return_timestamps="false")
        assert client.post("/audio-to-text", content=body, headers=headers).status_code == 200
        found = samples(client)

    def units(pipeline, model):
        return found[("runner_units_total", (("model", model), ("pipeline", pipeline)))]

    # go-livepeer: input height x width x images; output size x 25 frames; input pixels;
    # whole seconds of audio x 1000.
    assert units("image-to-image", "m/i2i") == 64 * 48 * 2
    assert units("image-to-video", "m/i2v") == 64 * 48 * 25
    assert units("upscale", "m/up") == 32 * 24
    assert units("audio-to-text", "m/a2t") == 2 * 1000
