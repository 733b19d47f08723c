"""The door in process, over a fake backend: health by status code, statuses, bodies, the path
secret, the refusal to open unauthenticated, and the door on the adapter's own port."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.backends.base import ModelState
from adapter.live_runner.apps import live_apps
from adapter.live_runner.routes import Door
from adapter.live_runner.server import LiveRunner, _RedactSecret
from adapter.service import RunnerService
from adapter.settings import LiveRunnerSettings
from contract.aimodels import merge_entries, parse_entries
from contract.errors import ConfigError, UpstreamError
from tests.support.apps import make_settings, model_entry, serve
from tests.support.fake_backend import FakeBackend
from tests.support.livepeer_multipart import go_multipart, png_bytes
from tests.support.runner_process import ROOT, free_port

SECRET = "s3cret-path-segment-0123456789"
T2I, UPSCALE = "/text-to-image/test/sd", "/upscale/test/up"


def models(tmp_path, **runner):
    return merge_entries(
        parse_entries(
            [
                model_entry("text-to-image", tmp_path, "test/sd", runner=runner),
                model_entry("upscale", tmp_path, "test/up"),
            ]
        )
    )


def door_client(tmp_path, backend=None, secret="", **settings):
    settings = make_settings(tmp_path, **settings)
    served = models(tmp_path)
    service = RunnerService(settings, served, backend or FakeBackend())
    return TestClient(Door(service, live_apps(served), secret))


@pytest.mark.parametrize(
    ("state", "code", "status"),
    [
        (ModelState.READY, 200, "OK"),
        (ModelState.COLD, 200, "IDLE"),
        (ModelState.LOADING, 503, "LOADING"),
        (ModelState.FAILED, 503, "ERROR"),
    ],
)
def test_health_status_code_follows_the_model_state(tmp_path, state, code, status):
    backend = FakeBackend(states={"text-to-image/test/sd": state})
    client = door_client(tmp_path, backend)
    health = client.get(f"{T2I}/health")
    assert (health.status_code, health.json()) == (code, {"status": status})
    # Per app: the other model stays healthy.
    assert client.get(f"{UPSCALE}/health").status_code == 200
    # The SDK sends `{}` with every GET.
    assert client.request("GET", f"{T2I}/health", json={}).status_code == code


def test_routes_bodies_and_model(tmp_path):
    backend = FakeBackend()
    client = door_client(tmp_path, backend)
    assert client.post(f"{T2I}/text-to-image", json={"prompt": "x"}).status_code == 200
    assert client.post(f"{T2I}/text-to-image/", json={"prompt": "x"}).status_code == 200
    # The app's model, whatever the body left out.
    assert backend.received[-1][1].model_id == "test/sd"
    image = png_bytes()
    body, headers = go_multipart(image, prompt="x")
    assert client.post(f"{UPSCALE}/upscale", content=body, headers=headers).status_code == 200
    sent = client.post(
        f"{UPSCALE}/upscale",
        json={"prompt": "x", "image": "data:image/png;base64," + base64.b64encode(image).decode()},
    )
    assert sent.status_code == 200, sent.text
    # The glue received the decoded PNG, re-encoded by its checks.
    assert backend.received[-1][1].image.data.startswith(b"\x89PNG")
    # A route of another pipeline, another app's path: the contract's 404 body.
    wrong = client.post(f"{T2I}/upscale", json={"prompt": "x"})
    assert wrong.status_code == 404 and "POST /text-to-image" in wrong.json()["detail"]["msg"]
    nowhere = client.post("/llm/x/llm", json={})
    assert nowhere.status_code == 404 and T2I in nowhere.json()["detail"]["msg"]
    # JSON routes take JSON only; not an object is a 400.
    assert client.post(f"{T2I}/text-to-image", content=b"[1]").status_code == 400
    assert client.post(f"{T2I}/text-to-image", content=body, headers=headers).status_code == 415


def test_a_json_upload_keeps_the_upload_limit(tmp_path):
    client = door_client(tmp_path, limits={"max_request_bytes": 4096})
    big = base64.b64encode(b"\0" * 5000).decode()
    refused = client.post(f"{UPSCALE}/upscale", json={"prompt": "x", "image": big})
    assert refused.status_code == 413
    assert "max_request_bytes" in refused.json()["detail"]["msg"]
    # A JSON upload of up to max_request_bytes decoded passes the body limit (4/3 as base64).
    fits = base64.b64encode(png_bytes()[:3000]).decode()
    assert (
        client.post(f"{UPSCALE}/upscale", json={"prompt": "x", "image": fits}).status_code == 400
    )  # not a whole image: the glue's own check


def test_statuses_are_never_declared_stand_ins_nor_sdk_reserved(tmp_path):
    backend = FakeBackend(
        errors={"upscale/test/up": UpstreamError(402, {"detail": {"msg": "pay"}}, "pay")}
    )
    client = door_client(tmp_path, backend, declared_statuses_only=True)
    paid = client.post(
        f"{UPSCALE}/upscale", json={"prompt": "x", "image": base64.b64encode(png_bytes()).decode()}
    )
    assert (paid.status_code, paid.json()) == (500, {"detail": {"msg": "pay"}})


def test_overload_is_503_with_retry_after_even_with_declared_statuses(tmp_path):
    port = free_port()
    settings = make_settings(
        tmp_path,
        declared_statuses_only=True,
        retry_after_s=7,
        live_runner=LiveRunnerSettings(port=port),
    )
    backend = FakeBackend(gate=threading.Event())  # the first run holds the slot until set
    app = create_app(settings, models(tmp_path, max_queue=0), backend)
    url = f"http://127.0.0.1:{port}{T2I}/text-to-image"
    with serve(app):
        first = threading.Thread(
            target=httpx.post, args=(url,), kwargs={"json": {"prompt": "x"}, "timeout": 30}
        )
        first.start()
        deadline = time.monotonic() + 30
        while backend.running == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.running == 1
        refused = httpx.post(url, json={"prompt": "x"}, timeout=30)
        backend.gate.set()
        first.join()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    assert "capacity" in refused.json()["detail"]["msg"]


def test_the_path_secret_closes_every_other_path(tmp_path):
    client = door_client(tmp_path, secret=SECRET)
    assert client.get(f"/{SECRET}{T2I}/health").status_code == 200
    for path in (f"{T2I}/health", f"/wrong{T2I}/health", f"/{SECRET[:-1]}{T2I}/health"):
        closed = client.get(path)
        assert (closed.status_code, closed.json()) == (404, {"detail": {"msg": "Not found."}})
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", f"/{SECRET}{T2I}/health"),
        None,
    )
    _RedactSecret(SECRET).filter(record)
    assert SECRET not in record.getMessage()


@pytest.mark.parametrize(
    ("live", "says"),
    [
        ({"port": 9, "host": "0.0.0.0"}, "ADAPTER_LIVE_RUNNER_HOST=0.0.0.0"),
        ({"port": 9, "host": "10.1.2.3"}, "not a loopback address"),
        ({"port": 9, "host": "runner.lan"}, "not a loopback address"),
        ({"serve_on_main": True}, "ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN"),
        ({"port": 9, "path_secret": "short"}, "at least 16"),
        ({"orchestrator_url": "http://orch:8935"}, "the door is off"),
        ({"port": 9, "orchestrator_url": "http://orch:8935"}, "ADAPTER_LIVE_RUNNER_ORCH_SECRET"),
    ],
)
def test_refuses_a_door_open_to_anyone(tmp_path, live, says):
    settings = make_settings(tmp_path, live_runner=LiveRunnerSettings(**live))
    with pytest.raises(ConfigError, match=says) as refused:
        create_app(settings, models(tmp_path), FakeBackend())
    if "loopback" in says or "SERVE_ON_MAIN" in says:
        assert "ADAPTER_LIVE_RUNNER_PATH_SECRET" in str(refused.value)
        assert "ADAPTER_LIVE_RUNNER_ALLOW_UNAUTHENTICATED=true" in str(refused.value)


@pytest.mark.parametrize(
    "live",
    [
        {"port": 9, "host": "127.0.0.1"},
        {"port": 9, "host": "::1"},
        {"port": 9, "host": "localhost"},
        {"port": 9, "host": "0.0.0.0", "path_secret": SECRET},
        {"port": 9, "host": "0.0.0.0", "allow_unauthenticated": True},
    ],
)
def test_opens_on_loopback_or_when_told(tmp_path, live):
    settings = make_settings(tmp_path, live_runner=LiveRunnerSettings(**live))
    assert (
        LiveRunner.from_settings(settings, RunnerService(settings, models(tmp_path), FakeBackend()))
        is not None
    )


def test_the_adapter_process_refuses_to_start_the_door_open_on_all_addresses(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "ADAPTER_DEVICE": "cpu",
        "ADAPTER_DEMO_DIR": str(tmp_path / "demo"),
        "ADAPTER_LIVE_RUNNER_PORT": "8935",
        "ADAPTER_LIVE_RUNNER_HOST": "0.0.0.0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "adapter.main:app", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "not a loopback address, without authentication" in done.stderr
    assert "ADAPTER_LIVE_RUNNER_PATH_SECRET" in done.stderr


def test_the_door_on_the_adapters_own_port(tmp_path):
    settings = make_settings(
        tmp_path,
        auth_token="batch-token",
        limits={"max_json_request_bytes": 1024},
        live_runner=LiveRunnerSettings(serve_on_main=True, path_secret=SECRET),
    )
    with TestClient(create_app(settings, models(tmp_path), FakeBackend())) as client:
        # The batch routes keep their bearer token; the door needs none (go-livepeer sends none).
        assert client.post("/text-to-image", json={"prompt": "x"}).status_code == 401
        door = f"/live-runner/{SECRET}"
        assert client.post(f"{door}{T2I}/text-to-image", json={"prompt": "x"}).status_code == 200
        # The door's JSON upload limit, not the batch JSON limit of 1 KiB.
        image = base64.b64encode(png_bytes()).decode()
        assert len(image) > 1024
        sent = client.post(f"{door}{UPSCALE}/upscale", json={"prompt": "x", "image": image})
        assert sent.status_code == 200, sent.text
        assert client.get(f"/live-runner{T2I}/health").status_code == 404
        assert client.get("/health").status_code == 200


def test_text_to_video_our_own_pipeline_is_an_app_like_any_other(tmp_path):
    from adapter.live_runner.registration import metadata_of

    served = merge_entries(parse_entries([model_entry("text-to-video", tmp_path, "test/wan")]))
    backend = FakeBackend()
    service = RunnerService(make_settings(tmp_path), served, backend)
    (app,) = live_apps(served)
    client = TestClient(Door(service, live_apps(served), ""))
    assert client.get("/text-to-video/test/wan/health").json() == {"status": "OK"}
    body = {"prompt": "x", "width": 32, "height": 32, "num_frames": 5}
    answer = client.post("/text-to-video/test/wan/text-to-video", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["video"]["url"].startswith("data:video/mp4;base64,")
    assert backend.received[-1][1].model_id == "test/wan"
    refused = client.post("/text-to-video/test/wan/text-to-video", json={**body, "num_frames": 6})
    assert refused.status_code == 400 and "4k+1" in refused.json()["detail"]["msg"]
    # Its metadata points at our API, not the runner's (which has no text-to-video).
    assert '"api":"modal-ai-runner genTextToVideo"' in metadata_of(app)
