"""go-livepeer's routes answer only the statuses the runner spec declares for them, by default.

go-livepeer's generated client decodes only declared statuses (200, 400, 401, 422, 500; 413 and
415 where declared); on any other its worker returns neither result nor error, which its
combined orchestrator dereferences, never giving back the capacity slot. So overload and an
unreachable or failing backend answer 500 with the contract's body (a refusal for load says
`insufficient capacity`, which go-livepeer's gateway retries on another orchestrator), and a
413 where it is not declared is a 400. `ADAPTER_DECLARED_STATUSES_ONLY=false` keeps 503 and 413
for a front end that understands them.

The last tests build every status the runner routes can answer, through the real parts that
answer it where that is cheap (the capacity limiter, the HTTP backend against a closed port and
a silent one, the local backend without weights, the body limit, auth) and through a fake
backend raising each error of the tree as the real backends raise it, and check each against
the spec (read from ../shared/contract; those tests skip without it).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import contract.errors as tree
from adapter.app import create_app
from adapter.errors import DECLARED_EVERYWHERE, declared_statuses, install_error_handlers
from contract.aimodels import merge_entries, parse_entries
from contract.errors import (
    BadRequestError,
    ClientDisconnectedError,
    InferenceError,
    LimitExceededError,
    MalformedBodyError,
    ModelUnavailableError,
    OverloadedError,
    PayloadTooLargeError,
    RunnerError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedMediaError,
    UpstreamError,
)
from contract.pipelines import PIPELINE_SPECS, Pipeline
from tests.support.apps import make_settings, model_entry, running_client
from tests.support.fake_backend import (
    FakeBackend,
    fake_app,
    fake_entries,
    fake_model_id,
    valid_request,
)
from tests.support.runner_spec import assert_contract_error, spec_statuses

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PIPELINES = list(Pipeline)
# Routes whose spec declares 413 (and 415): the rest answer 400 for them. text-to-video is ours,
# outside the spec: its OpenAPI entry declares 413 and 503.
DECLARES_413 = {Pipeline.AUDIO_TO_TEXT, Pipeline.IMAGE_TO_TEXT, Pipeline.TEXT_TO_VIDEO}
# Pipelines whose uploads the adapter decodes (the others are forwarded as they are).
DECODES_UPLOADS = {
    Pipeline.IMAGE_TO_IMAGE,
    Pipeline.IMAGE_TO_VIDEO,
    Pipeline.UPSCALE,
    Pipeline.AUDIO_TO_TEXT,
    Pipeline.IMAGE_TO_TEXT,
}


def route(pipeline: Pipeline) -> str:
    return f"/{pipeline.value}"


def key(pipeline: Pipeline) -> str:
    return f"{pipeline.value}/{fake_model_id(pipeline)}"


@contextmanager
def overloaded(app: FastAPI, backend: FakeBackend, pipeline: Pipeline) -> Iterator[TestClient]:
    """A client whose model of `pipeline` holds its one slot (capacity 1, no queue)."""
    backend.gate = threading.Event()
    with TestClient(app, headers=AUTH) as client, ThreadPoolExecutor(1) as pool:
        job = pool.submit(client.post, route(pipeline), **valid_request(pipeline))
        for _ in range(2000):
            if backend.running:
                break
            threading.Event().wait(0.005)
        assert backend.running == 1
        try:
            yield client
        finally:
            backend.gate.set()
            assert job.result().status_code == 200


def no_queue_entries() -> list[dict[str, Any]]:
    return fake_entries(runner={"max_queue": 0})


# --- item 1: by default, only declared statuses ------------------------------------------------


@pytest.mark.parametrize("pipeline", [Pipeline.TEXT_TO_IMAGE, Pipeline.AUDIO_TO_TEXT], ids=str)
def test_overload_is_a_500_saying_insufficient_capacity_with_retry_after(tmp_path, pipeline):
    backend = FakeBackend()
    app = fake_app(tmp_path, backend, no_queue_entries(), auth_token=TOKEN, retry_after_s=3)
    with overloaded(app, backend, pipeline) as client:
        refused = client.post(route(pipeline), **valid_request(pipeline))
    assert refused.status_code == 500
    assert refused.headers["retry-after"] == "3"
    assert refused.headers["content-type"] == "application/json"
    msg = refused.json()["detail"]["msg"]
    assert "insufficient capacity" in msg
    assert msg.startswith(f"Model {key(pipeline)} has insufficient capacity")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def http_backend_app(tmp_path: Path, upstream_url: str, **settings: Any) -> FastAPI:
    entries = fake_entries(runner={"upstream_url": upstream_url, "request_timeout_s": 0.3})
    settings = {"auth_token": TOKEN, "upstream_poll_interval_s": 30, **settings}
    return create_app(
        make_settings(tmp_path, backend="http", **settings), merge_entries(parse_entries(entries))
    )


def test_an_unreachable_backend_is_a_500_with_retry_after(tmp_path):
    app = http_backend_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    with TestClient(app, headers=AUTH) as client:
        response = client.post("/text-to-image", **valid_request(Pipeline.TEXT_TO_IMAGE))
    assert response.status_code == 500
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "detail": {
            "msg": f"The upstream runner for {fake_model_id(Pipeline.TEXT_TO_IMAGE)} "
            "is unreachable."
        }
    }


def test_an_undeclared_413_is_a_400_and_a_declared_one_stays(tmp_path):
    app = fake_app(tmp_path, auth_token=TOKEN, limits={"max_request_bytes": 4096})
    big = ("big.png", b"\x89PNG" + b"\0" * 8000, "application/octet-stream")
    with TestClient(app, headers=AUTH) as client:
        for pipeline in (Pipeline.IMAGE_TO_IMAGE, Pipeline.IMAGE_TO_TEXT):
            response = client.post(route(pipeline), files={"image": big}, data={"prompt": "x"})
            assert response.status_code == (413 if pipeline in DECLARES_413 else 400)
            assert response.json() == {
                "detail": {"msg": "Request body is over the limit ADAPTER_MAX_REQUEST_BYTES=4096."}
            }


def test_the_setting_still_allows_503_and_413_for_a_front_end_that_understands_them(tmp_path):
    backend = FakeBackend()
    app = fake_app(
        tmp_path,
        backend,
        no_queue_entries(),
        auth_token=TOKEN,
        declared_statuses_only=False,
        limits={"max_json_request_bytes": 200},
    )
    with overloaded(app, backend, Pipeline.IMAGE_TO_IMAGE) as client:
        refused = client.post("/image-to-image", **valid_request(Pipeline.IMAGE_TO_IMAGE))
        big = client.post("/text-to-image", json={"prompt": "x" * 300})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert "insufficient capacity" in refused.json()["detail"]["msg"]
    assert big.status_code == 413
    declared = app.openapi()["paths"]["/text-to-image"]["post"]["responses"]
    assert {"503", "413"} <= set(declared)


def test_our_own_text_to_video_route_answers_503_and_413_by_default(tmp_path):
    backend = FakeBackend()
    app = fake_app(
        tmp_path,
        backend,
        no_queue_entries(),
        auth_token=TOKEN,
        limits={"max_json_request_bytes": 200},
    )
    with overloaded(app, backend, Pipeline.TEXT_TO_VIDEO) as client:
        refused = client.post("/text-to-video", **valid_request(Pipeline.TEXT_TO_VIDEO))
        big = client.post("/text-to-video", json={"prompt": "x" * 300})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert "insufficient capacity" in refused.json()["detail"]["msg"]
    assert big.status_code == 413
    assert "ADAPTER_MAX_JSON_REQUEST_BYTES=200" in big.json()["detail"]["msg"]


def test_by_default_the_openapi_document_declares_only_the_specs_statuses(tmp_path):
    from adapter.settings import Settings

    assert Settings.model_fields["declared_statuses_only"].default is True
    paths = fake_app(tmp_path).openapi()["paths"]
    for pipeline in PIPELINES:
        declared = {int(status) for status in paths[route(pipeline)]["post"]["responses"]}
        assert declared == declared_statuses(pipeline), pipeline


def test_declared_statuses_come_from_the_one_pipeline_table(tmp_path, monkeypatch):
    for pipeline, spec in PIPELINE_SPECS.items():
        assert declared_statuses(pipeline) == DECLARED_EVERYWHERE | set(spec.extra_error_statuses)
    # Declaring 413 on text-to-image in PipelineSpec is all it takes for its 413 to stand.
    spec = PIPELINE_SPECS[Pipeline.TEXT_TO_IMAGE]
    monkeypatch.setitem(
        PIPELINE_SPECS,
        Pipeline.TEXT_TO_IMAGE,
        spec.model_copy(update={"extra_error_statuses": (413,)}),
    )
    app = fake_app(tmp_path, limits={"max_json_request_bytes": 100})
    with TestClient(app) as client:
        assert client.post("/text-to-image", json={"prompt": "x" * 200}).status_code == 413
        assert client.post("/llm", json={"messages": [], "model": "x" * 200}).status_code == 400


@pytest.mark.parametrize("declared_only", [True, False])
def test_the_declared_statuses_choice_is_passed_in_not_read_from_app_state(declared_only):
    app = FastAPI()  # no app.state.service: nothing to look the choice up in
    install_error_handlers(app, declared_only=declared_only)

    @app.post("/text-to-image")
    async def busy() -> None:
        raise OverloadedError("Model m has insufficient capacity.", retry_after_s=1)

    @app.post("/jobs")
    async def other_door() -> None:
        raise OverloadedError("busy", retry_after_s=1)

    with TestClient(app) as client:
        runner_route = client.post("/text-to-image")
        new_door = client.post("/jobs")
    assert runner_route.status_code == (500 if declared_only else 503)
    assert runner_route.headers["retry-after"] == "1"
    # A door with a contract of its own keeps the tree's status.
    assert new_door.status_code == 503


# --- every status the runner routes can answer, against the spec -------------------------------

# What the backends raise, one instance per cause, worded as they word it.
BACKEND_FAILURES: dict[str, BaseException] = {
    "overload": OverloadedError("Model m has insufficient capacity (1 in flight, 0 waiting).", 2),
    "unreachable backend": ServiceUnavailableError("The upstream runner for m is unreachable.", 2),
    "Modal unavailable": ServiceUnavailableError("Modal is unavailable: no route.", 2),
    "cancelled on Modal": ServiceUnavailableError("The call for m was cancelled on Modal.", 2),
    "load failure": ModelUnavailableError("Model m failed to load: no weights at /models/m."),
    "timeout": InferenceError("The upstream runner for m did not answer within 300 s."),
    "cancelled": InferenceError("The request was cancelled."),
    "out of memory": InferenceError("GPU out of memory."),
    "bad input": BadRequestError("height and width must be positive multiples of 8, got 60x48."),
    "unknown model": UnknownModelError("Model x is not served for text-to-image."),
    "over a cost limit": LimitExceededError("Steps 500 are over the limit max_inference_steps."),
    "unreadable body": MalformedBodyError("There was an error parsing the body."),
    "unsupported media": UnsupportedMediaError("Unsupported audio format or malformed file."),
    "too large for Modal": PayloadTooLargeError("The request is too large to send to Modal."),
    "auth at the upstream": UnauthorizedError("Invalid bearer token."),
    "upstream 413": UpstreamError(413, {"detail": {"msg": "File size exceeds limit."}}, "File."),
    "upstream 415": UpstreamError(415, {"detail": {"msg": "Unsupported."}}, "Unsupported."),
    "upstream 422": UpstreamError(
        422,
        {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]},
        "Field required",
    ),
    "upstream string detail": UpstreamError(400, {"detail": "Bad body"}, "Bad body"),
    "client left": ClientDisconnectedError("The client disconnected before the answer was ready."),
    "plain error": RunnerError("Something failed."),
    "a bug": AttributeError("'NoneType' object has no attribute 'images'"),
    "a bad argument deep in a library": ValueError("Padding size should be less than ..."),
}


def test_the_failures_cover_every_error_of_the_tree():
    raised = {type(error) for error in BACKEND_FAILURES.values()}
    errors = {
        value
        for value in vars(tree).values()
        if isinstance(value, type) and issubclass(value, RunnerError)
    }
    # The jobs door's own answers (an unknown job, a job already ended, its full queue): no
    # backend raises them, and no runner route answers them.
    door_only = {tree.NotFoundError, tree.ConflictError, tree.QueueFullError}
    assert errors - door_only <= raised, errors - door_only - raised


@pytest.mark.parametrize("pipeline", PIPELINES, ids=str)
def test_every_error_a_backend_raises_is_declared_for_its_route(tmp_path, pipeline):
    backend = FakeBackend()
    app = fake_app(tmp_path, backend, auth_token=TOKEN)
    answered = set()
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        for cause, error in BACKEND_FAILURES.items():
            backend.errors[key(pipeline)] = error  # type: ignore[assignment]
            response = client.post(route(pipeline), **valid_request(pipeline))
            assert_contract_error(response, route(pipeline))
            if isinstance(error, ServiceUnavailableError):
                assert response.headers["retry-after"] == "2", cause
            if isinstance(error, UnauthorizedError):
                assert response.headers["www-authenticate"] == "Bearer", cause
            answered.add(response.status_code)
    assert answered <= spec_statuses(route(pipeline))
    assert 500 in answered and 400 in answered


@pytest.mark.parametrize("pipeline", PIPELINES, ids=str)
def test_overload_and_queue_timeout_are_declared(tmp_path, pipeline):
    backend = FakeBackend()
    app = fake_app(tmp_path, backend, no_queue_entries(), auth_token=TOKEN)
    with overloaded(app, backend, pipeline) as client:
        response = client.post(route(pipeline), **valid_request(pipeline))
    assert_contract_error(response, route(pipeline))
    assert "insufficient capacity" in response.json()["detail"]["msg"]

    backend = FakeBackend()
    entries = fake_entries(runner={"max_queue": 1})
    app = fake_app(tmp_path, backend, entries, auth_token=TOKEN, queue_timeout_s=0.05)
    with overloaded(app, backend, pipeline) as client:
        response = client.post(route(pipeline), **valid_request(pipeline))
    assert_contract_error(response, route(pipeline))
    assert "no slot freed within 0.05 s" in response.json()["detail"]["msg"]
    assert "insufficient capacity" in response.json()["detail"]["msg"]


def test_unreachable_and_silent_backends_are_declared_on_every_route(tmp_path):
    closed = http_backend_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        stalled = http_backend_app(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}")
        with TestClient(closed, headers=AUTH) as down, TestClient(stalled, headers=AUTH) as slow:
            for pipeline in PIPELINES:
                unreachable = down.post(route(pipeline), **valid_request(pipeline))
                assert_contract_error(unreachable, route(pipeline))
                assert "unreachable" in unreachable.json()["detail"]["msg"]
                timed_out = slow.post(route(pipeline), **valid_request(pipeline))
                assert_contract_error(timed_out, route(pipeline))
                assert "did not answer within 0.3 s" in timed_out.json()["detail"]["msg"]


def test_a_model_that_fails_to_load_is_declared(app_factory, tmp_path):
    missing = tmp_path / "no-weights-here"
    pipelines = [Pipeline.TEXT_TO_IMAGE, Pipeline.LLM, Pipeline.AUDIO_TO_TEXT]
    entries = [model_entry(p.value, missing, fake_model_id(p), warm=False) for p in pipelines]
    with running_client(app_factory(entries, auth_token=TOKEN), headers=AUTH) as client:
        for pipeline in pipelines:
            response = client.post(route(pipeline), **valid_request(pipeline))
            assert_contract_error(response, route(pipeline))
            assert response.status_code == 500


@pytest.mark.parametrize("pipeline", PIPELINES, ids=str)
def test_bad_input_auth_and_too_large_are_declared(tmp_path, pipeline):
    app = fake_app(tmp_path, auth_token=TOKEN, limits={"max_request_bytes": 40_000})
    request = valid_request(pipeline)
    with TestClient(app, raise_server_exceptions=False) as client:
        unauthorized = client.post(route(pipeline), **request)
        assert_contract_error(unauthorized, route(pipeline))
        assert unauthorized.status_code == 401
        client.headers.update(AUTH)
        too_large = client.post(
            route(pipeline),
            content=b"{" + b" " * 50_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert_contract_error(too_large, route(pipeline))
        assert too_large.status_code == (413 if pipeline in DECLARES_413 else 400)
        invalid = client.post(route(pipeline), json={"model_id": 5, "messages": 5})
        assert_contract_error(invalid, route(pipeline))
        assert invalid.status_code == 422
        if pipeline in DECODES_UPLOADS:
            ((name, _),) = request["files"].items()
            broken = {name: ("input.bin", b"not a picture, not a sound", "text/plain")}
            bad_file = client.post(route(pipeline), files=broken, data=request.get("data"))
            assert_contract_error(bad_file, route(pipeline))
        unknown = client.post(route(pipeline), **with_model(pipeline, request, "no/such-model"))
        assert_contract_error(unknown, route(pipeline))
        assert unknown.status_code == 400


def with_model(pipeline: Pipeline, request: dict[str, Any], model_id: str) -> dict[str, Any]:
    field = PIPELINE_SPECS[pipeline].model_field
    if "json" in request:
        return {"json": {**request["json"], field: model_id}}
    return {**request, "data": {**request.get("data", {}), field: model_id}}
