"""The runner contract over HTTP: auth, model routing, errors, limits and service routes.

Over the fake backend (no model is loaded) except the last section, which checks how the local
backend's loading shows through /health and the generate routes.
"""

from __future__ import annotations

import re
from importlib.metadata import version as package_version

import pytest
from fastapi.testclient import TestClient

from adapter.backends.base import ModelState
from contract.errors import ModelUnavailableError
from contract.schemas import ImageResponse
from tests.support.apps import entry, running_client, sd_entry
from tests.support.fake_backend import FakeBackend, fake_backend_of

SMALL = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1}
SD = entry("text-to-image", "test/tiny-sd")
SD_KEY = "text-to-image/test/tiny-sd"


@pytest.fixture
def client(fake_app_factory):
    with running_client(fake_app_factory([SD])) as c:
        yield c


def served_model_ids(app) -> list[str]:
    """The model of each request that reached the backend, in order."""
    return [model.model_id for model, _ in fake_backend_of(app).received]


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic c2VjcmV0"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "other-scheme", "empty"],
)
def test_missing_or_wrong_token_gets_401_with_the_contract_body(fake_app_factory, headers):
    app = fake_app_factory([SD], auth_token="s3cret")
    with running_client(app) as client:
        response = client.post("/text-to-image", json=SMALL, headers=headers)
    assert fake_backend_of(app).received == []
    assert response.status_code == 401
    assert response.json() == {"detail": {"msg": "Invalid bearer token."}}
    assert response.headers["www-authenticate"] == "Bearer"


def test_llm_and_image_to_text_word_their_401_as_the_runner_does(fake_app_factory):
    with running_client(fake_app_factory([SD], auth_token="s3cret")) as client:
        llm = client.post("/llm", json={"messages": [{"role": "user", "content": "hi"}]})
        i2t = client.post("/image-to-text", files={"image": ("a.png", b"x")})
    for response in (llm, i2t):
        assert response.status_code == 401
        assert response.json() == {"detail": {"msg": "Invalid bearer token"}}
        assert response.headers["www-authenticate"] == "Bearer"


def test_right_token_is_served_and_service_routes_need_none(fake_app_factory):
    app = fake_app_factory([SD], auth_token="s3cret")
    with running_client(app) as client:
        ok = client.post("/text-to-image", json=SMALL, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200, ok.text
        assert ImageResponse.model_validate(ok.json()).images
        assert served_model_ids(app) == ["test/tiny-sd"]
        for path in ("/health", "/version", "/hardware/info", "/hardware/stats"):
            assert client.get(path).status_code == 200, path


def test_an_entrys_own_token_opens_the_routes(fake_app_factory):
    with running_client(fake_app_factory([{**SD, "token": "entry-token"}])) as client:
        assert client.post("/text-to-image", json=SMALL).status_code == 401
        ok = client.post(
            "/text-to-image", json=SMALL, headers={"Authorization": "Bearer entry-token"}
        )
        assert ok.status_code == 200


def test_runner_auth_token_environment_variable_is_honoured(monkeypatch, tmp_path):
    from adapter.settings import Settings

    monkeypatch.setenv("AUTH_TOKEN", "from-env")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    settings = Settings()
    assert settings.auth_token == "from-env"
    assert settings.model_dir == tmp_path


# --- model routing -------------------------------------------------------------------------


def test_unknown_model_gets_400_naming_what_is_served(client):
    response = client.post("/text-to-image", json={**SMALL, "model_id": "nope/model"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "msg": "Model nope/model is not served for text-to-image. "
            "Served: text-to-image: test/tiny-sd."
        }
    }


def test_pipeline_not_configured_gets_400_after_validating_its_body(client):
    response = client.post(
        "/image-to-image",
        data={"prompt": "x"},
        files={"image": ("a.png", b"\x89PNG", "application/octet-stream")},
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "msg": "Pipeline image-to-image is not served here. "
            "Served: text-to-image: test/tiny-sd."
        }
    }
    assert client.post("/llm", json={"messages": []}).status_code == 400
    assert client.post("/image-to-image", data={"prompt": "x"}).status_code == 422


def test_empty_model_id_picks_the_only_model_or_the_marked_default(fake_app_factory):
    only = fake_app_factory([SD])
    with running_client(only) as client:
        assert client.post("/text-to-image", json=SMALL).status_code == 200
    assert served_model_ids(only) == ["test/tiny-sd"]

    two = fake_app_factory(
        [entry("text-to-image", "a/sd"), entry("text-to-image", "b/sdxl", runner={"default": True})]
    )
    with running_client(two) as client:
        for model_id in ("", "b/sdxl", "a/sd"):
            body = {**SMALL, "model_id": model_id} if model_id else SMALL
            assert client.post("/text-to-image", json=body).status_code == 200
    assert served_model_ids(two) == ["b/sdxl", "b/sdxl", "a/sd"]


def test_several_models_and_no_default_means_model_id_is_required(fake_app_factory):
    app = fake_app_factory([entry("text-to-image", "a/sd"), entry("text-to-image", "b/sdxl")])
    with running_client(app) as client:
        response = client.post("/text-to-image", json=SMALL)
        assert response.status_code == 400
        assert "a/sd, b/sdxl" in response.json()["detail"]["msg"]
        named = client.post("/text-to-image", json={**SMALL, "model_id": "b/sdxl"})
        assert named.status_code == 200
    assert served_model_ids(app) == ["b/sdxl"]


# --- validation and errors -----------------------------------------------------------------


def test_malformed_json_gets_fastapis_422(client):
    response = client.post(
        "/text-to-image", content=b'{"prompt": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_wrong_types_and_missing_fields_get_422_with_locations(client):
    response = client.post("/text-to-image", json={"prompt": "x", "width": "wide"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "width"]
    missing = client.post("/text-to-image", json={"width": 64})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "prompt"]


def test_empty_prompt_gets_the_runners_400(client):
    response = client.post("/text-to-image", json={**SMALL, "prompt": "  "})
    assert response.status_code == 400
    assert response.json() == {"detail": {"msg": "Prompt must be provided."}}


def test_loras_are_refused_clearly(client):
    response = client.post("/text-to-image", json={**SMALL, "loras": '{"a/b": 1.0}'})
    assert response.status_code == 400
    assert "LoRA" in response.json()["detail"]["msg"]


def test_trailing_slash_route_answers_like_the_runner(client):
    response = client.post("/text-to-image/", json=SMALL)
    assert response.status_code == 200
    assert ImageResponse.model_validate(response.json()).images
    assert served_model_ids(client.app) == ["test/tiny-sd"]


def test_unknown_path_is_a_plain_404(client):
    response = client.post("/frame-interpolation", json={})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert served_model_ids(client.app) == []


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "fields", "at_limit", "named"),
    [
        (
            {"max_pixels_per_image": 64 * 64},
            {"width": 72},
            {"width": 64},
            "ADAPTER_MAX_PIXELS_PER_IMAGE=4096",
        ),
        (
            {"max_images_per_request": 2},
            {"num_images_per_prompt": 3},
            {"num_images_per_prompt": 2},
            "ADAPTER_MAX_IMAGES_PER_REQUEST=2",
        ),
        (
            {"max_inference_steps": 3},
            {"num_inference_steps": 4},
            {"num_inference_steps": 3},
            "ADAPTER_MAX_INFERENCE_STEPS=3",
        ),
    ],
)
def test_each_cost_limit_gets_a_400_naming_it(fake_app_factory, limits, fields, at_limit, named):
    app = fake_app_factory([SD], limits=limits)
    with running_client(app) as client:
        response = client.post("/text-to-image", json={**SMALL, **fields})
        assert response.status_code == 400
        assert named in response.json()["detail"]["msg"]
        assert served_model_ids(app) == []  # refused before the backend
        assert client.post("/text-to-image", json={**SMALL, **at_limit}).status_code == 200
    assert served_model_ids(app) == ["test/tiny-sd"]


def test_json_bodies_have_a_tighter_limit_than_uploads(fake_app_factory):
    limits = {"max_json_request_bytes": 500, "max_request_bytes": 100_000}
    with running_client(fake_app_factory([SD], limits=limits)) as client:
        response = client.post("/text-to-image", json={**SMALL, "negative_prompt": "n" * 600})
        assert response.status_code == 400  # a 413, answered as the route declares
        assert response.json() == {
            "detail": {"msg": "Request body is over the limit ADAPTER_MAX_JSON_REQUEST_BYTES=500."}
        }
        assert client.post("/text-to-image", json=SMALL).status_code == 200


def test_default_limits_are_safe():
    from adapter.settings import Limits

    limits = Limits()
    assert limits.max_pixels_per_image == 1024 * 1024
    assert limits.max_images_per_request == 4
    assert limits.max_inference_steps == 100
    assert limits.max_request_bytes == 50 * 1024 * 1024
    assert limits.max_json_request_bytes == 1024 * 1024


def test_zero_images_is_a_400(client):
    response = client.post("/text-to-image", json={**SMALL, "num_images_per_prompt": 0})
    assert response.status_code == 400
    assert set(response.json()) == {"detail"} and response.json()["detail"]["msg"]
    assert served_model_ids(client.app) == []


def test_body_over_the_byte_limit_gets_413_with_the_contract_body(fake_app_factory):
    app = fake_app_factory([SD], limits={"max_request_bytes": 1000}, declared_statuses_only=False)
    with running_client(app) as client:
        big = {**SMALL, "negative_prompt": "n" * 2000}
        response = client.post("/text-to-image", json=big)
        assert response.status_code == 413
        assert "ADAPTER_MAX_REQUEST_BYTES=1000" in response.json()["detail"]["msg"]

        def chunks():  # no Content-Length: the limit must hold on the streamed bytes too
            yield b'{"prompt": "x", "negative_prompt": "'
            for _ in range(40):
                yield b"n" * 100
            yield b'"}'

        streamed = client.post(
            "/text-to-image", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["detail"]["msg"].startswith("Request body is over the limit")
        assert client.post("/text-to-image", json=SMALL).status_code == 200


# --- service routes ------------------------------------------------------------------------


def test_version_is_the_packages_semver(client):
    body = client.get("/version").json()
    assert body == {
        "pipeline": "text-to-image",
        "model_id": "test/tiny-sd",
        "version": package_version("modal-ai-runner"),
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", body["version"])


def test_version_can_be_set_as_the_runners_version_variable(monkeypatch, fake_app_factory):
    from pydantic import ValidationError

    from adapter.settings import Settings

    monkeypatch.setenv("VERSION", "0.14.1")
    assert Settings().runner_version == "0.14.1"
    monkeypatch.setenv("VERSION", "undefined")  # the runner's default: not semver, refused
    with pytest.raises(ValidationError, match="should match pattern"):
        Settings()
    monkeypatch.setenv("VERSION", "0.14.1")
    with running_client(fake_app_factory([SD])) as client:
        assert client.get("/version").json()["version"] == "0.14.1"


def test_hardware_routes_give_an_empty_map_without_a_gpu(client):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the empty map is the no-GPU answer")
    assert client.get("/hardware/info").json() == {
        "pipeline": "text-to-image",
        "model_id": "test/tiny-sd",
        "gpu_info": {},
    }
    assert client.get("/hardware/stats").json() == {
        "pipeline": "text-to-image",
        "model_id": "test/tiny-sd",
        "gpu_stats": {},
    }


@pytest.mark.parametrize(
    ("states", "health"),
    [
        ([ModelState.READY, ModelState.READY], "OK"),
        ([ModelState.COLD, ModelState.COLD], "IDLE"),
        ([ModelState.COLD, ModelState.READY], "OK"),
        ([ModelState.LOADING, ModelState.READY], "LOADING"),
        ([ModelState.LOADING, ModelState.COLD], "LOADING"),
        ([ModelState.FAILED, ModelState.LOADING], "ERROR"),
        ([ModelState.FAILED, ModelState.READY], "ERROR"),
    ],
)
def test_health_sums_up_the_states_of_every_model(fake_app_factory, states, health):
    entries = [entry("text-to-image", "a/sd"), entry("llm", "b/llm")]
    backend = FakeBackend(states={"text-to-image/a/sd": states[0], "llm/b/llm": states[1]})
    with TestClient(fake_app_factory(entries, backend)) as client:  # LOADING never settles
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": health}


def test_a_model_the_backend_cannot_load_is_a_500_with_the_contract_body(fake_app_factory):
    failure = ModelUnavailableError("Model test/tiny-sd failed to load: no weights")
    backend = FakeBackend(states={SD_KEY: ModelState.FAILED}, errors={SD_KEY: failure})
    with running_client(fake_app_factory([SD], backend)) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500
    assert response.json() == {"detail": {"msg": "Model test/tiny-sd failed to load: no weights"}}


def test_an_unexpected_error_is_still_the_contracts_json_500(fake_app_factory):
    backend = FakeBackend(errors={SD_KEY: AttributeError("a bug")})
    app = fake_app_factory([SD], backend)
    with running_client(app, raise_server_exceptions=False) as client:
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": {"msg": "Text-to-image pipeline error."}}


# --- over the local backend: loading as /health and the routes see it -----------------------


def test_health_is_error_when_a_model_fails_to_load(app_factory, tmp_path):
    missing = sd_entry(tmp_path / "missing-model")
    with running_client(app_factory([missing])) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        response = client.post("/text-to-image", json=SMALL)
        assert response.status_code == 500
        assert "failed to load" in response.json()["detail"]["msg"]


def test_cold_model_is_idle_until_its_first_request_loads_it(app_factory, tiny_sd):
    with running_client(app_factory([sd_entry(tiny_sd, warm=False)])) as client:
        assert client.get("/health").json() == {"status": "IDLE"}
        assert client.post("/text-to-image", json=SMALL).status_code == 200
        assert client.get("/health").json() == {"status": "OK"}


def test_a_cold_models_failed_load_is_tried_again_by_the_next_request(
    app_factory, tiny_sd, tmp_path
):
    import shutil

    folder = tmp_path / "arrives-later"
    with running_client(app_factory([sd_entry(folder, warm=False)])) as client:
        first = client.post("/text-to-image", json=SMALL)
        assert first.status_code == 500
        assert "failed to load" in first.json()["detail"]["msg"]
        shutil.copytree(tiny_sd, folder)  # the operator puts the weights in place
        assert client.post("/text-to-image", json=SMALL).status_code == 200
        assert client.get("/health").json() == {"status": "OK"}
