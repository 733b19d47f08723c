"""The Modal backend over modal_app.py's own classes run in this process (tests/modal_inprocess):
requests to calls, errors to status codes, time limits, cancellation, health, streaming."""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time

import grpclib.exceptions
import modal
import modal.exception
import pytest
from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.backends import modal as modal_backend
from adapter.backends.local import LocalBackend
from adapter.backends.modal import ModalBackend
from adapter.backends.modal_errors import translate
from adapter.pipelines.llm import LLMRunner
from adapter.pipelines.text_to_image import TextToImageRunner
from adapter.settings import Settings
from contract.aimodels import merge_entries, parse_entries
from contract.errors import BadRequestError, ConfigError
from contract.schemas import ImageResponse, LLMRequest, TextToImageParams
from functions.cancel import GenerationCancelled
from modal_deploy.runtime import create_web_app
from tests.support.apps import make_settings, wait_until_settled
from tests.support.modal_inprocess import InProcessQueue, modal_token_configured

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 48, "num_inference_steps": 2}


class GatedTextToImage(TextToImageRunner):
    """The real text-to-image glue, held at a gate; records how each job ended."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.outcomes: queue.Queue[str] = queue.Queue()

    def run(self, handle, request, should_stop):
        self.entered.release()
        assert self.gate.wait(timeout=60), "test never opened the gate"
        try:
            result = super().run(handle, request, should_stop)
        except GenerationCancelled:
            self.outcomes.put("cancelled")
            raise
        self.outcomes.put("finished")
        return result


class StreamingTextToImage(TextToImageRunner):
    """Text-to-image glue that streams one response per image (a real `stream` generator).
    With `pause_after_first`, it waits after the first image, as a generation between two
    steps, until it is told to stop (or a minute passes)."""

    def __init__(self) -> None:
        self.events: queue.Queue[str] = queue.Queue()
        self.pause_after_first = False

    def stream(self, handle, request, should_stop):
        try:
            for index in range(request.num_images_per_prompt):
                single = request.model_copy(
                    update={"num_images_per_prompt": 1, "seed": request.seed + index}
                )
                yield self.run(handle, single, should_stop)
                self.events.put(f"sent {index}")
                deadline = time.monotonic() + 60
                while self.pause_after_first and not should_stop():
                    assert time.monotonic() < deadline, "the stream was never stopped"
                    time.sleep(0.01)
        finally:
            self.events.put("stopped" if should_stop() else "done")


@pytest.fixture
def gated():
    glue = GatedTextToImage()
    yield glue
    glue.gate.set()


@pytest.fixture
def classes(in_process_classes):
    return in_process_classes()


@pytest.fixture
def gated_classes(in_process_classes, gated):
    return in_process_classes(gated)


WEB_TOKEN = "web-token"


def web_app(tiny_modal_app, classes, token=WEB_TOKEN):
    """The deployed adapter, with AUTH_TOKEN as the auth Secret would set it."""
    settings = Settings(backend="modal", auth_token=token)
    return create_web_app(tiny_modal_app.MODELS, classes, settings)


def web_client(tiny_modal_app, classes):
    return TestClient(
        web_app(tiny_modal_app, classes), headers={"Authorization": f"Bearer {WEB_TOKEN}"}
    )


def test_the_deployed_adapter_refuses_to_start_without_a_token(tiny_modal_app, classes):
    from contract.errors import ConfigError

    with pytest.raises(ConfigError, match="AUTH_TOKEN is empty"):
        web_app(tiny_modal_app, classes, token="")
    with TestClient(web_app(tiny_modal_app, classes)) as client:
        assert client.post("/text-to-image", json=SMALL).status_code == 401


def test_requests_run_in_their_models_modal_class(tiny_modal_app, classes):
    with web_client(tiny_modal_app, classes) as client:
        assert wait_until_settled(client) == "OK"
        response = client.post(
            "/text-to-image", json={**SMALL, "seed": 4, "num_images_per_prompt": 2}
        )
        assert response.status_code == 200, response.text
        assert [image["seed"] for image in response.json()["images"]] == [4, 5]
        other = client.post("/text-to-image", json={**SMALL, "model_id": "test/one-second-sd"})
        assert other.status_code == 200, other.text
    assert [call.task.done() for call in classes.calls] == [True, True]
    assert not any(call.cancel_requested for call in classes.calls)


def test_bad_input_found_in_the_container_is_a_400(tiny_modal_app, classes):
    with web_client(tiny_modal_app, classes) as client:
        response = client.post("/text-to-image", json={**SMALL, "width": 60})
        assert response.status_code == 400
        assert "multiples of 8" in response.json()["detail"]["msg"]
        response = client.post("/text-to-image", json={**SMALL, "prompt": "a | b"})
        assert response.status_code == 400
        assert "at most 1" in response.json()["detail"]["msg"]


def test_a_modal_outage_is_a_500_with_retry_after(tiny_modal_app, classes):
    classes.spawn_error = modal.exception.ConnectionError("Could not connect to the Modal server.")
    with web_client(tiny_modal_app, classes) as client:
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500  # a 503, answered as the spec declares
    assert response.headers["Retry-After"] == "2"
    assert response.json() == {
        "detail": {"msg": "Modal is unavailable: Could not connect to the Modal server."}
    }


def test_modal_refusing_the_call_is_a_500_that_names_why(tiny_modal_app, classes):
    classes.spawn_error = modal.exception.NotFoundError("App 'livepeer-ai-runner' not found")
    with web_client(tiny_modal_app, classes) as client:
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500
    assert "App 'livepeer-ai-runner' not found" in response.json()["detail"]["msg"]


def test_a_job_past_its_classs_time_limit_is_a_500_and_stops(tiny_modal_app, gated_classes, gated):
    with web_client(tiny_modal_app, gated_classes) as client:
        response = client.post("/text-to-image", json={**SMALL, "model_id": "test/one-second-sd"})
        assert response.status_code == 500
        assert "ran past its 1 s time limit" in response.json()["detail"]["msg"]
        gated.gate.set()
        assert gated.outcomes.get(timeout=60) == "cancelled"


def test_no_result_in_time_is_a_500_with_retry_after_and_cancels_the_call(
    tiny_modal_app, in_process_classes, gated
):
    classes = in_process_classes(gated, get_wait_cap_s=0.5)
    with web_client(tiny_modal_app, classes) as client:
        response = client.post("/text-to-image", json=SMALL)
        assert response.status_code == 500  # a 503, answered as the spec declares
        assert response.headers["Retry-After"] == "2"
        assert "the call was cancelled" in response.json()["detail"]["msg"]
        assert classes.calls[0].cancel_requested
        gated.gate.set()
        assert gated.outcomes.get(timeout=60) == "cancelled"


def run_backend(tiny_modal_app, classes, scenario, tmp_path):
    """Run `scenario(backend, model)` on a started Modal backend over `classes`."""
    models = tiny_modal_app.MODELS
    backend = ModalBackend(make_settings(tmp_path, backend="modal"), models, classes)

    async def main():
        await backend.start()
        try:
            return await scenario(backend, models[0])
        finally:
            await backend.close()

    return asyncio.run(main())


async def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


def test_cancelling_the_request_cancels_the_modal_call_and_stops_the_work(
    tiny_modal_app, gated_classes, gated, tmp_path
):
    classes = gated_classes

    async def scenario(backend, model):
        request = TextToImageParams(**SMALL)
        job = asyncio.create_task(backend.run(model, request))
        await wait_for(lambda: gated.entered.acquire(blocking=False))
        job.cancel()  # what the request's task gets when the orchestrator goes away
        with pytest.raises(asyncio.CancelledError):
            await job
        call = classes.calls[0]
        assert call.cancel_requested
        await wait_for(call.task.done)
        gated.gate.set()
        return await asyncio.to_thread(gated.outcomes.get, timeout=60)

    assert run_backend(tiny_modal_app, classes, scenario, tmp_path) == "cancelled"


def test_cancelled_while_modal_accepts_the_call_cancels_it_once_it_exists(
    tiny_modal_app, classes, tmp_path
):
    async def scenario(backend, model):
        classes.spawn_gate = asyncio.Event()
        job = asyncio.create_task(backend.run(model, TextToImageParams(**SMALL)))
        await asyncio.sleep(0.1)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert classes.calls == []  # Modal has not returned the call yet
        classes.spawn_gate.set()
        await wait_for(lambda: classes.calls and classes.calls[0].cancel_requested)
        await wait_for(classes.calls[0].task.done)
        return classes.calls[0].task.cancelled()

    assert run_backend(tiny_modal_app, classes, scenario, tmp_path) is True


def test_health_follows_the_class_lookup(tiny_modal_app, classes, monkeypatch):
    monkeypatch.setattr(modal_backend, "LOOKUP_RETRY_FIRST_S", 0.05)
    classes.lookup_error = modal.exception.ConnectionError("Could not connect")
    with web_client(tiny_modal_app, classes) as client:
        # Unreachable: LOADING, which go-livepeer accepts at registration.
        assert client.get("/health").json() == {"status": "LOADING"}
        classes.lookup_error = modal.exception.NotFoundError("App not found")
        deadline = time.monotonic() + 30
        while client.get("/health").json()["status"] != "ERROR":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        classes.lookup_error = None  # the app got deployed
        while client.get("/health").json()["status"] != "OK":
            assert time.monotonic() < deadline
            time.sleep(0.02)


@pytest.mark.skipif(modal_token_configured(), reason="a Modal token is configured here")
def test_real_modal_client_without_a_token_reports_error_and_never_hangs(tiny_modal_app, tmp_path):
    settings = make_settings(tmp_path, backend="modal", modal_app="no-such-app-for-tests")
    app = create_app(settings, tiny_modal_app.MODELS)  # looks classes up with modal.Cls
    assert isinstance(app.state.service.backend, ModalBackend)
    with TestClient(app) as client:
        assert wait_until_settled(client, timeout_s=30) == "ERROR"
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500
    assert "Token missing" in response.json()["detail"]["msg"]


def test_streaming_yields_each_chunk_and_closing_early_stops_the_work(
    tiny_modal_app, in_process_classes, tmp_path
):
    glue = StreamingTextToImage()
    classes = in_process_classes(glue)
    request = TextToImageParams(**SMALL, seed=20, num_images_per_prompt=3)

    async def read_all(backend, model):
        return [chunk async for chunk in backend.stream(model, request)]

    chunks = run_backend(tiny_modal_app, classes, read_all, tmp_path)
    assert all(isinstance(chunk, ImageResponse) for chunk in chunks)
    assert [chunk.images[0].seed for chunk in chunks] == [20, 21, 22]
    assert glue.events.get(timeout=60) == "sent 0"

    async def read_one(backend, model):
        stream = backend.stream(model, request)
        first = await anext(stream)
        await stream.aclose()  # the client went away after the first chunk
        return first

    while not glue.events.empty():
        glue.events.get()
    glue.pause_after_first = True
    fresh = in_process_classes(glue)
    first = run_backend(tiny_modal_app, fresh, read_one, tmp_path)
    assert first.images[0].seed == 20
    # Closing the stream raised the stop flag, which the generation sees at its next step:
    # it ends there, and the second image is never made.
    assert [glue.events.get(timeout=60) for _ in range(2)] == ["sent 0", "stopped"]
    assert glue.events.empty()


class ParkedLLM(LLMRunner):
    """The real LLM glue, whose generation parks at token `park_at` until it is told to stop
    (or a minute passes). It counts the tokens generated: generate asks should_stop after
    each one."""

    def __init__(self, park_at: int) -> None:
        self.park_at = park_at
        self.tokens = 0
        self.parked = threading.Event()
        self.stopped = threading.Event()

    def stream(self, handle, request, should_stop):
        def counting_should_stop() -> bool:
            self.tokens += 1
            deadline = time.monotonic() + 60
            while self.tokens == self.park_at and not should_stop():
                self.parked.set()
                assert time.monotonic() < deadline, "the generation was never stopped"
                time.sleep(0.01)
            if should_stop():
                self.stopped.set()
                return True
            return False

        yield from super().stream(handle, request, counting_should_stop)


def test_a_streamed_answer_stops_on_the_gpu_when_its_client_leaves(
    tiny_llm_modal_app, define_in_process, tmp_path
):
    """Closing a remote generator (`remote_gen`) would not reach the container; the stream is
    a spawned call writing to a Queue, and closing it cancels that call."""
    glue = ParkedLLM(park_at=8)
    classes = define_in_process(tiny_llm_modal_app, glue)
    request = LLMRequest(
        messages=[{"role": "user", "content": "Write a poem about the sea."}],
        temperature=0,
        max_tokens=200,
        stream=True,
    )

    async def scenario(backend, model):
        stream = backend.stream(model, request)
        first = await anext(stream)
        await wait_for(glue.parked.is_set)
        left_at = glue.tokens
        await stream.aclose()  # the client went away mid-answer
        assert classes.calls[0].cancel_requested
        await wait_for(glue.stopped.is_set)
        await wait_for(classes.calls[0].task.done)
        return first, left_at, glue.tokens

    first, left_at, final = run_backend(tiny_llm_modal_app, classes, scenario, tmp_path)
    assert first.choices[0].delta is not None
    # The generation stopped within a token of the client leaving, far from its 200.
    assert left_at == 8
    assert final - left_at <= 1
    # Its partition lives as long as the adapter would wait for it.
    assert set(classes.queue.ttls) == {tiny_llm_modal_app.PLAN.classes[0].stream_ttl_s}


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (BadRequestError("bad."), 400),
        # A ValueError is no client error: only the tree's own (raised in the container) are.
        (ValueError("width must be positive"), 500),
        (modal.exception.ConnectionError("no route"), 503),
        (modal.exception.InternalFailure("worker lost"), 503),
        (modal.exception.InputCancellation("cancelled"), 503),
        (TimeoutError(), 503),
        (grpclib.exceptions.StreamTerminatedError("connection reset"), 503),
        (modal.exception.AuthError("Token missing"), 500),
        (modal.exception.NotFoundError("App not found"), 500),
        (modal.exception.FunctionTimeoutError("timed out"), 500),
        (modal.exception.ExecutionError("could not deserialize"), 500),
        (modal.exception.RequestSizeError("too large"), 413),
        (RuntimeError("unexpected"), 500),
    ],
)
def test_each_modal_error_maps_to_one_status(tiny_modal_app, raised, status):
    error = translate(raised, tiny_modal_app.PLAN.classes[0], retry_after_s=2)
    assert error.status_code == status
    if status == 503:
        assert error.retry_after_s == 2


def test_cancellation_is_never_translated(tiny_modal_app):
    assert translate(asyncio.CancelledError(), tiny_modal_app.PLAN.classes[0], 2) is None


def test_the_seam_has_the_shape_of_modals_own_objects(tiny_modal_app):
    deployed = modal.Cls.from_name("livepeer-ai-runner", "TextToImage__x")()
    in_app = tiny_modal_app.GPU_CLASSES["TextToImage__test_tiny_sd"]()
    for target in (deployed, in_app):
        assert callable(target.run.spawn.aio) and callable(target.stream_into.spawn.aio)
        assert callable(target.run_reporting.spawn.aio)
    call = modal.FunctionCall.from_id("fc-0123456789")
    assert callable(call.get.aio) and callable(call.cancel.aio)
    assert "timeout" in inspect.signature(modal.FunctionCall.get).parameters
    stream_queue = tiny_modal_app.stream_queue
    assert isinstance(stream_queue, modal.Queue)
    assert callable(stream_queue.put_many.aio) and callable(stream_queue.get_many.aio)
    in_process = InProcessQueue()
    for name in ("put_many", "get_many"):
        real = inspect.signature(getattr(modal.Queue, name)).parameters
        ours = inspect.signature(getattr(in_process, name).aio).parameters
        assert list(ours) == [p for p in real if p != "self"], name


def test_app_factory_picks_the_backend_and_keeps_local_by_default(tiny_modal_app, tmp_path):
    models = tiny_modal_app.MODELS
    local = create_app(make_settings(tmp_path), models)
    assert isinstance(local.state.service.backend, LocalBackend)
    on_modal = create_app(make_settings(tmp_path, backend="modal"), models)
    assert isinstance(on_modal.state.service.backend, ModalBackend)
    live = merge_entries(parse_entries([{"pipeline": "live-video-to-video", "model_id": "x"}]))
    with pytest.raises(ConfigError, match="no implementation to run on Modal"):
        create_app(make_settings(tmp_path, backend="modal"), live)
