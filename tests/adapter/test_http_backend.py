"""The adapter in front of a runner started as a separate process, over real sockets: the
HTTP backend forwards bodies, passes the runner's errors through, folds its health into ours,
and recovers when the runner comes back."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from adapter.backends.http import _form_value
from tests.support.apps import llm_entry, make_app, model_entry, sd_entry, serve, whisper_entry
from tests.support.audio import livepeer_form, wav
from tests.support.livepeer_multipart import go_multipart, png_bytes
from tests.support.llm import GREEDY, event_payloads
from tests.support.local_apps import app_with_glue
from tests.support.runner_process import RunnerProcess

TOKEN = "runner-secret"
SMALL = {"prompt": "a lighthouse", "width": 64, "height": 48, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def runner_entries(tiny_sd, tiny_svd, tiny_upscaler, tiny_whisper, tiny_llm, tiny_sam2):
    return [
        sd_entry(tiny_sd),
        whisper_entry(tiny_whisper),
        llm_entry(tiny_llm),
        model_entry("image-to-image", tiny_sd, "test/tiny-sd-img2img"),
        model_entry("image-to-video", tiny_svd, "test/tiny-svd"),
        model_entry("upscale", tiny_upscaler, "test/tiny-upscaler"),
        model_entry("segment-anything-2", tiny_sam2, "test/tiny-sam2"),
    ]


@pytest.fixture(scope="module")
def runner(tmp_path_factory, runner_entries):
    workdir = tmp_path_factory.mktemp("runner")
    with RunnerProcess(workdir, runner_entries, ADAPTER_AUTH_TOKEN=TOKEN) as process:
        yield process


def fronting(runner, entries, token=TOKEN):
    """The adapter's entries for the runner's: same models, served through runner.url."""
    return [
        {
            "pipeline": e["pipeline"],
            "model_id": e["model_id"],
            "warm": True,
            "capacity": 2,
            "runner": {"upstream_url": runner.url, "upstream_token": token},
        }
        for e in entries
    ]


# Each served pipeline's request, as go-livepeer sends it: (path, JSON body or multipart body).
def pipeline_requests():
    def multipart(body_and_headers):
        body, headers = body_and_headers
        return {"content": body, "headers": headers}

    image = png_bytes(64, 48)
    return {
        "text-to-image": {"json": {**SMALL, "seed": 5}},
        "audio-to-text": multipart(
            livepeer_form(wav(1.5), filename="clip.wav", return_timestamps="true")
        ),
        "llm": {"json": GREEDY},
        "image-to-image": multipart(
            go_multipart(image, "in.png", prompt="x", seed=3, num_inference_steps=2)
        ),
        "image-to-video": multipart(
            go_multipart(image, "in.png", height=48, width=64, seed=3, num_inference_steps=2)
        ),
        "upscale": multipart(
            go_multipart(png_bytes(32, 24), "in.png", prompt="x", seed=3, num_inference_steps=2)
        ),
        "segment-anything-2": multipart(
            go_multipart(
                image,
                "in.png",
                point_coords="[[0.25, 0.5], [0.75, 0.5]]",
                point_labels="[1, 0]",
                box="[0.1, 0.1, 0.9, 0.8]",
                multimask_output=False,
                return_logits=False,
                normalize_coords=False,
            )
        ),
    }


def test_every_pipeline_through_the_adapter_equals_the_runner_directly(
    tmp_path, runner, runner_entries
):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve(http_adapter(tmp_path, fronting(runner, runner_entries))) as url:
        for pipeline, request in pipeline_requests().items():
            headers = {**auth, **request.get("headers", {})}
            kwargs = {key: value for key, value in request.items() if key != "headers"}
            direct = httpx.post(f"{runner.url}/{pipeline}", headers=headers, timeout=60, **kwargs)
            via = httpx.post(
                f"{url}/{pipeline}", headers=request.get("headers"), timeout=60, **kwargs
            )
            assert direct.status_code == via.status_code == 200, (pipeline, via.text)
            direct_body, via_body = direct.json(), via.json()
            if pipeline == "llm":  # a fresh id and time per answer
                for body in (direct_body, via_body):
                    del body["id"], body["created"]
            assert via_body == direct_body, pipeline


def test_llm_event_streams_are_relayed_event_by_event(tmp_path, runner, runner_entries):
    body = {**GREEDY, "stream": True}
    with httpx.stream(
        "POST",
        f"{runner.url}/llm",
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        direct = event_payloads(response.read())
    with (
        serve(http_adapter(tmp_path, fronting(runner, runner_entries))) as url,
        httpx.stream("POST", f"{url}/llm", json=body, timeout=60) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        via = event_payloads(response.read())
    assert via[-1] == direct[-1] == "[DONE]"

    def essentials(payloads):
        chunks = [json.loads(payload) for payload in payloads[:-1]]
        return [
            "".join(c["choices"][0]["delta"]["content"] for c in chunks),
            chunks[-1]["choices"][0]["finish_reason"],
            chunks[-1]["usage"],
        ]

    assert essentials(via) == essentials(direct)
    assert len(via) == len(direct)


def adapter_entry(runner, token=TOKEN, **fields):
    return {
        "pipeline": "text-to-image",
        "model_id": "test/tiny-sd",
        "warm": True,
        "capacity": 2,
        "runner": {"upstream_url": runner.url, "upstream_token": token},
        **fields,
    }


def http_adapter(tmp_path, entries, **settings):
    return make_app(tmp_path, entries, backend="http", upstream_poll_interval_s=0.1, **settings)


def wait_for_health(client, status, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health").json()["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"/health never became {status}")


def test_the_adapter_keeps_its_own_token_and_names_the_model_upstream(tmp_path, runner):
    body = {**SMALL, "seed": 11, "num_images_per_prompt": 2}
    with serve(http_adapter(tmp_path, [adapter_entry(runner)], auth_token="front")) as url:
        refused = httpx.post(f"{url}/text-to-image", json=body, timeout=60)
        via = httpx.post(
            f"{url}/text-to-image", json=body, headers={"Authorization": "Bearer front"}, timeout=60
        )
    assert refused.status_code == 401
    assert via.status_code == 200, via.text
    assert [image["seed"] for image in via.json()["images"]] == [11, 12]


def test_the_runners_error_answers_pass_through(tmp_path, runner):
    with serve(http_adapter(tmp_path, [adapter_entry(runner)])) as url:
        # Two prompts where the model takes one: only the runner, which has it, can tell.
        body = {**SMALL, "prompt": "a | b"}
        response = httpx.post(f"{url}/text-to-image", json=body, timeout=60)
        assert response.status_code == 400
        direct = httpx.post(
            f"{runner.url}/text-to-image",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert response.json() == direct.json()
        assert "at most 1" in response.json()["detail"]["msg"]


def test_a_client_leaving_a_video_frees_the_runners_model(tmp_path, runner, runner_entries):
    from tests.support.abandoned import assert_an_abandoned_video_frees_the_model

    # The adapter closes its upstream request, so the runner stops the model as its client left.
    video = [e for e in fronting(runner, runner_entries) if e["pipeline"] == "image-to-video"]
    with serve(http_adapter(tmp_path, video)) as url:
        assert_an_abandoned_video_frees_the_model(url)


def test_a_wrong_upstream_token_is_a_500_that_says_so(tmp_path, runner):
    with serve(http_adapter(tmp_path, [adapter_entry(runner, token="wrong")])) as url:
        response = httpx.post(f"{url}/text-to-image", json=SMALL, timeout=60)
    assert response.status_code == 500
    assert "refused the adapter's token" in response.json()["detail"]["msg"]


def test_runner_stopped_then_restarted(tmp_path, tmp_path_factory, tiny_sd):
    runner = RunnerProcess(tmp_path_factory.mktemp("restart"), [sd_entry(tiny_sd)])
    runner.start()
    try:
        entry = {**adapter_entry(runner, token=""), "model_id": "test/tiny-sd"}
        with (
            serve(http_adapter(tmp_path, [entry])) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            assert client.get("/health").json() == {"status": "OK"}
            assert client.post("/text-to-image", json=SMALL).status_code == 200

            runner.stop()
            down = client.post("/text-to-image", json=SMALL)
            assert down.status_code == 500  # the spec declares no 503
            assert down.json() == {
                "detail": {"msg": "The upstream runner for test/tiny-sd is unreachable."}
            }
            assert down.headers["retry-after"] == "2"
            wait_for_health(client, "ERROR")

            runner.start()
            wait_for_health(client, "OK")
            assert client.post("/text-to-image", json=SMALL).status_code == 200
    finally:
        runner.stop()


def test_an_upstream_not_up_yet_reads_as_loading_during_the_grace_period(tmp_path):
    entry = {
        "pipeline": "text-to-image",
        "model_id": "m",
        "warm": True,
        "runner": {"upstream_url": "http://127.0.0.1:9"},
    }
    with serve(http_adapter(tmp_path, [entry]), settle=False) as url:
        time.sleep(0.3)  # a few polls have failed
        assert httpx.get(f"{url}/health").json() == {"status": "LOADING"}
        response = httpx.post(f"{url}/text-to-image", json=SMALL, timeout=30)
        assert response.status_code == 500
        # A failed request inside the grace period does not turn health to ERROR either.
        assert httpx.get(f"{url}/health").json() == {"status": "LOADING"}


def test_an_upstreams_503_without_retry_after_gets_the_adapters_setting(tmp_path):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    busy = FastAPI()

    @busy.get("/health")
    def health() -> dict[str, str]:
        return {"status": "OK"}

    @busy.post("/text-to-image")
    def refuse() -> JSONResponse:
        return JSONResponse({"detail": {"msg": "Busy upstream."}}, status_code=503)

    with serve(busy, settle=False) as upstream_url:
        entry = {
            "pipeline": "text-to-image",
            "model_id": "m",
            "warm": True,
            "runner": {"upstream_url": upstream_url},
        }
        with serve(http_adapter(tmp_path, [entry], retry_after_s=7)) as url:
            response = httpx.post(f"{url}/text-to-image", json=SMALL, timeout=30)
    # A 503 is not declared on the route: go-livepeer gets the declared 500, Retry-After kept.
    assert response.status_code == 500
    assert response.json() == {"detail": {"msg": "Busy upstream."}}
    assert response.headers["retry-after"] == "7"


def test_the_http_backend_needs_an_upstream_per_model(tmp_path):
    from contract.errors import ConfigError

    with pytest.raises(ConfigError, match=r"field 'runner\.upstream_url'"):
        http_adapter(tmp_path, [{"pipeline": "text-to-image", "model_id": "m"}])


def test_form_values_are_written_as_go_livepeer_writes_them():
    assert [_form_value(v) for v in (7.5, 0.02, True, False, 25, "x")] == [
        "7.500000",
        "0.020000",
        "true",
        "false",
        "25",
        "x",
    ]


def test_a_stream_arrives_while_the_runner_generates_and_leaving_stops_it(
    tmp_path, tmp_path_factory, tiny_llm
):
    """The runner here is the same app in this process, so its generation can be held at a
    token: the adapter must relay the first event before the runner has finished, and a client
    leaving the adapter must stop the runner's generation."""
    from tests.support.llm import GatedLLM

    gated = GatedLLM(park_at=12)
    runner_app = app_with_glue(
        tmp_path_factory.mktemp("gated-runner"), [llm_entry(tiny_llm)], gated
    )
    body = {**GREEDY, "max_tokens": 40, "stream": True}
    try:
        with serve(runner_app) as runner_url:
            upstream = type("Upstream", (), {"url": runner_url})
            adapter = http_adapter(tmp_path, fronting(upstream, [llm_entry(tiny_llm)], token=""))
            with serve(adapter) as url, httpx.Client(base_url=url, timeout=60) as client:
                with client.stream("POST", "/llm", json=body) as response:
                    lines = response.iter_lines()
                    first = json.loads(next(line for line in lines if line)[len("data: ") :])
                    assert gated.parked.wait(60)
                    assert not gated.gate.is_set()
                    assert first["usage"]["completion_tokens"] < 12
                # The adapter's client has gone with the answer half done.
                assert gated.saw_stop.wait(60), "the runner's generation never stopped"
    finally:
        gated.gate.set()


def test_an_upstream_refusal_comes_back_as_the_contract_says(tmp_path, runner):
    """The http backend forwards a model it does not load itself; the upstream's answer (here
    a runner that does not serve image-to-text refusing it) comes back with the contract's
    status and body."""
    entry = {
        "pipeline": "image-to-text",
        "model_id": "Salesforce/blip-image-captioning-large",
        "runner": {"upstream_url": runner.url, "upstream_token": TOKEN},
    }
    body, headers = go_multipart(png_bytes(32, 32), "in.png", field="image", prompt="a")
    with serve(http_adapter(tmp_path, [entry])) as url:
        response = httpx.post(f"{url}/image-to-text", content=body, headers=headers, timeout=60)
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("Pipeline image-to-text is not served")
