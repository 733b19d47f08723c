"""The adapter in front of a runner started as a separate process, over real sockets: the
HTTP backend forwards bodies, passes the runner's errors through, folds its health into ours,
and recovers when the runner comes back."""

from __future__ import annotations

import time

import httpx
import pytest

from adapter.backends.http import _form_value
from tests.conftest import make_app, sd_entry, serve
from tests.runner_process import RunnerProcess

TOKEN = "runner-secret"
SMALL = {"prompt": "a lighthouse", "width": 64, "height": 48, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def runner(tmp_path_factory, tiny_sd):
    workdir = tmp_path_factory.mktemp("runner")
    with RunnerProcess(workdir, [sd_entry(tiny_sd, model_id="test/tiny-sd")],
                       ADAPTER_AUTH_TOKEN=TOKEN) as process:
        yield process


def adapter_entry(runner, token=TOKEN, **fields):
    return {"pipeline": "text-to-image", "model_id": "test/tiny-sd", "warm": True,
            "capacity": 2, "runner": {"upstream_url": runner.url, "upstream_token": token},
            **fields}


def http_adapter(tmp_path, entries, **settings):
    return make_app(tmp_path, entries, backend="http", upstream_poll_interval_s=0.1, **settings)


def wait_for_health(client, status, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/health").json()["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"/health never became {status}")


def test_text_to_image_through_the_adapter_equals_the_runner_directly(tmp_path, runner):
    body = {**SMALL, "seed": 11, "num_images_per_prompt": 2}
    direct = httpx.post(f"{runner.url}/text-to-image", json=body,
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert direct.status_code == 200, direct.text
    with serve(http_adapter(tmp_path, [adapter_entry(runner)], auth_token="front")) as url:
        via = httpx.post(f"{url}/text-to-image", json=body,
                         headers={"Authorization": "Bearer front"}, timeout=60)
    assert via.status_code == 200, via.text
    assert via.json() == direct.json()
    assert [image["seed"] for image in via.json()["images"]] == [11, 12]


def test_the_runners_error_answers_pass_through(tmp_path, runner):
    with serve(http_adapter(tmp_path, [adapter_entry(runner)])) as url:
        response = httpx.post(f"{url}/text-to-image", json={**SMALL, "width": 60}, timeout=60)
        assert response.status_code == 400
        direct = httpx.post(f"{runner.url}/text-to-image", json={**SMALL, "width": 60},
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert response.json() == direct.json()
        assert "multiples of 8" in response.json()["detail"]["msg"]


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
        with serve(http_adapter(tmp_path, [entry])) as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/health").json() == {"status": "OK"}
            assert client.post("/text-to-image", json=SMALL).status_code == 200

            runner.stop()
            down = client.post("/text-to-image", json=SMALL)
            assert down.status_code == 503
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
    entry = {"pipeline": "text-to-image", "model_id": "m", "warm": True,
             "runner": {"upstream_url": "http://127.0.0.1:9"}}
    with serve(http_adapter(tmp_path, [entry]), settle=False) as url:
        time.sleep(0.3)  # a few polls have failed
        assert httpx.get(f"{url}/health").json() == {"status": "LOADING"}
        response = httpx.post(f"{url}/text-to-image", json=SMALL, timeout=30)
        assert response.status_code == 503
        # A failed request inside the grace period does not turn health to ERROR either.
        assert httpx.get(f"{url}/health").json() == {"status": "LOADING"}


def test_the_http_backend_needs_an_upstream_per_model(tmp_path):
    from adapter.config import ConfigError

    with pytest.raises(ConfigError, match=r"field 'runner\.upstream_url'"):
        http_adapter(tmp_path, [{"pipeline": "text-to-image", "model_id": "m"}])


def test_form_values_are_written_as_go_livepeer_writes_them():
    assert [_form_value(v) for v in (7.5, 0.02, True, False, 25, "x")] == [
        "7.500000", "0.020000", "true", "false", "25", "x"]
