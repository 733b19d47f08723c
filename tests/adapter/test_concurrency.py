"""Capacity and responsiveness on a real uvicorn server: /health answers while a model works,
at most N requests run at once, overload gets 500 "insufficient capacity" (503 where allowed)
with the contract body and Retry-After."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from adapter.backends import local
from adapter.capacity import CapacityLimiter
from adapter.pipelines import PIPELINES
from adapter.pipelines.text_to_image import TextToImageRunner
from contract.errors import OverloadedError
from tests.support.apps import running_client, sd_entry, serve
from tests.support.local_apps import app_with_glue

SMALL = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1}


class GatedTextToImage(TextToImageRunner):
    """The real text-to-image glue, held at a gate so a test decides when each job may run."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def run(self, pipe, request, should_stop):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.entered.release()
        try:
            assert self.gate.wait(timeout=60), "test never opened the gate"
            return super().run(pipe, request, should_stop)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def gated():
    glue = GatedTextToImage()
    yield glue
    glue.gate.set()


def test_health_answers_while_an_inference_is_running(tmp_path, tiny_sd, gated):
    app = app_with_glue(tmp_path, [sd_entry(tiny_sd)], gated)
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(client.post, "/text-to-image", json=SMALL, timeout=60)
            assert gated.entered.acquire(timeout=60)
            # The inference is mid-flight on the model's thread; the loop must still answer.
            for _ in range(3):
                health = client.get("/health")
                assert health.status_code == 200
                assert health.json() == {"status": "OK"}
                assert client.get("/version").status_code == 200
            assert not job.done()
            gated.gate.set()
            assert job.result().status_code == 200


class CountingBackend:
    """The real local backend, counting how many requests it holds at once."""

    def __init__(self, inner: local.LocalBackend) -> None:
        self.inner = inner
        self.running = 0
        self.peak = 0

    def check(self, models):
        self.inner.check(models)

    async def start(self):
        await self.inner.start()

    async def close(self):
        await self.inner.close()

    def state(self, model):
        return self.inner.state(model)

    async def run(self, model, request, hooks=None):
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await self.inner.run(model, request, hooks)
        finally:
            self.running -= 1


def test_capacity_never_exceeded_and_overload_is_insufficient_capacity(tmp_path, tiny_sd, gated):
    from adapter.app import create_app
    from contract.aimodels import merge_entries, parse_entries
    from tests.support.apps import make_settings

    settings = make_settings(tmp_path, retry_after_s=3)
    models = merge_entries(parse_entries([sd_entry(tiny_sd, capacity=2, runner={"max_queue": 1})]))
    pipelines = {**PIPELINES, gated.pipeline: gated}
    backend = CountingBackend(local.LocalBackend(settings, models, pipelines))
    app = create_app(settings, models, backend)
    limiter = app.state.service.limiters["text-to-image/test/tiny-sd"]

    def wait_for(condition):
        for _ in range(6000):
            if condition():
                return
            threading.Event().wait(0.01)
        raise AssertionError("condition never met")

    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        with ThreadPoolExecutor(6) as pool:
            admitted = [pool.submit(client.post, "/text-to-image", json=SMALL) for _ in range(2)]
            wait_for(lambda: limiter.in_flight == 2)
            queued = pool.submit(client.post, "/text-to-image", json=SMALL)
            wait_for(lambda: limiter.queued == 1)
            overflow = [client.post("/text-to-image", json=SMALL) for _ in range(2)]
            for response in overflow:
                # 500 on go-livepeer's routes (the spec declares no 503); its gateway retries
                # another orchestrator on "insufficient capacity".
                assert response.status_code == 500
                assert response.headers["retry-after"] == "3"
                assert response.json()["detail"]["msg"].startswith(
                    "Model text-to-image/test/tiny-sd has insufficient capacity"
                )
            # Health is not held up by a full model either.
            assert client.get("/health").json() == {"status": "OK"}
            gated.gate.set()
            results = [f.result() for f in [*admitted, queued]]
    assert [r.status_code for r in results] == [200, 200, 200]
    assert backend.peak == 2


def test_queue_wait_times_out_as_insufficient_capacity(tmp_path, tiny_sd, gated):
    app = app_with_glue(tmp_path, [sd_entry(tiny_sd)], gated, queue_timeout_s=0.2)
    with running_client(app) as client, ThreadPoolExecutor(1) as pool:
        job = pool.submit(client.post, "/text-to-image", json=SMALL)
        assert gated.entered.acquire(timeout=60)
        waited = client.post("/text-to-image", json=SMALL)
        assert waited.status_code == 500
        assert "insufficient capacity" in waited.json()["detail"]["msg"]
        assert "no slot freed within 0.2 s" in waited.json()["detail"]["msg"]
        gated.gate.set()
        assert job.result().status_code == 200


# --- the limiter itself --------------------------------------------------------------------


def test_limiter_hands_slots_over_in_arrival_order_and_recovers_from_cancelled_waiters():
    async def scenario() -> list[str]:
        limiter = CapacityLimiter(
            "m", max_in_flight=1, max_queue=2, queue_timeout_s=5, retry_after_s=1
        )
        order: list[str] = []
        release = asyncio.Event()

        async def worker(name: str) -> None:
            async with limiter.slot():
                order.append(name)
                await release.wait()

        holder = asyncio.create_task(worker("a"))
        await asyncio.sleep(0)
        waiting_b = asyncio.create_task(worker("b"))
        waiting_c = asyncio.create_task(worker("c"))
        await asyncio.sleep(0)
        assert (limiter.in_flight, limiter.queued) == (1, 2)
        with pytest.raises(OverloadedError):
            async with limiter.slot():
                pass
        waiting_b.cancel()  # a client that gives up while queued frees its place
        await asyncio.sleep(0)
        assert limiter.queued == 1
        release.set()
        await asyncio.gather(holder, waiting_c, return_exceptions=True)
        assert (limiter.in_flight, limiter.queued) == (0, 0)
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


class StopWatchingTextToImage(TextToImageRunner):
    """The real glue, which holds its first job until the request is abandoned, then runs the
    real pipeline with the stop flag up (it must stop between steps); later jobs run plainly."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.saw_stop = threading.Event()
        self.finished = threading.Event()
        self.outcome: list[str] = []

    def run(self, pipe, request, should_stop):
        if self.finished.is_set():
            return super().run(pipe, request, should_stop)
        self.started.set()
        for _ in range(6000):
            if should_stop():
                self.saw_stop.set()
                break
            threading.Event().wait(0.01)
        try:
            return super().run(pipe, request, should_stop)
        except BaseException as exc:
            self.outcome.append(type(exc).__name__)
            raise
        finally:
            self.finished.set()


def test_a_client_leaving_stops_the_inference_and_frees_the_slot(tmp_path, tiny_sd):
    glue = StopWatchingTextToImage()
    app = app_with_glue(tmp_path, [sd_entry(tiny_sd)], glue)
    limiter = app.state.service.limiters["text-to-image/test/tiny-sd"]
    with serve(app) as url:
        with httpx.Client(base_url=url) as client, pytest.raises(httpx.ReadTimeout):
            # The client gives up after 1 s and closes its connection.
            client.post("/text-to-image", json=SMALL, timeout=httpx.Timeout(60, read=1))
        assert glue.started.wait(60), "the pipeline never started"
        assert glue.saw_stop.wait(60), "the pipeline never saw the stop flag"
        for _ in range(6000):
            if limiter.in_flight == 0:
                break
            threading.Event().wait(0.01)
        assert limiter.in_flight == 0
        assert glue.finished.wait(60)
        assert glue.outcome == ["GenerationCancelled"]
        # The model is free again for the next client.
        assert httpx.post(f"{url}/text-to-image", json=SMALL, timeout=60).status_code == 200


def test_a_full_model_refuses_before_any_work_on_the_request():
    async def scenario() -> None:
        limiter = CapacityLimiter(
            "m", max_in_flight=1, max_queue=1, queue_timeout_s=5, retry_after_s=1
        )
        limiter.refuse_if_full()  # room: nothing raised
        release = asyncio.Event()

        async def hold() -> None:
            async with limiter.slot():
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.sleep(0)
        assert (limiter.in_flight, limiter.queued) == (1, 1)
        with pytest.raises(OverloadedError, match="the wait queue is full"):
            limiter.refuse_if_full()
        release.set()
        await asyncio.gather(*tasks)
        limiter.refuse_if_full()

    asyncio.run(scenario())
