"""A job on the Modal backend is a spawned call whose id is stored: an adapter that stops while
the call runs leaves it running, and the next one waits for that same call instead of running
the job twice. The steps the call tells through the stream Queue become the job's progress
while it runs (modal_app.py's classes, run in this process)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import modal.exception
import pytest

from adapter.backends.base import RunHooks
from adapter.backends.modal import ModalBackend
from adapter.jobs.door import JobsDoor, JobSubmission
from adapter.jobs.model import JobStatus
from adapter.jobs.outputs import open_outputs
from adapter.jobs.runner import JobRunner
from adapter.jobs.store import open_store
from adapter.service import RunnerService
from contract.schemas import ImageResponse, TextToImageParams
from tests.support.apps import make_settings
from tests.support.jobs_api import jobs_settings
from tests.support.modal_inprocess import _Aio
from tests.support.pausing_glue import PausingTextToImage

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 48, "num_inference_steps": 2}


async def until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def jobs_on_modal(
    app: Any, classes: Any, tmp_path: Path, worker_id: str
) -> AsyncIterator[tuple[JobsDoor, JobRunner, Any]]:
    """(door, its runner, store): the jobs door over a started Modal backend on `classes`; the
    store and the backend are closed on leaving (the runner is the test's to stop)."""
    settings = make_settings(tmp_path, backend="modal", jobs=jobs_settings(tmp_path))
    backend = ModalBackend(settings, app.MODELS, classes)
    service = RunnerService(settings, app.MODELS, backend)
    store = open_store(settings.jobs.database_url, tmp_path)
    outputs = open_outputs(settings.jobs.outputs_url, tmp_path)
    runner = JobRunner(settings.jobs, service, store, outputs, worker_id=worker_id)
    door = JobsDoor(settings, service, store, outputs, runner)
    await backend.start()
    await door.start()
    try:
        yield door, runner, store
    finally:
        await store.close()
        await backend.close()


async def until_ended(store: Any, job_id: str) -> Any:
    async def ended() -> bool:
        row = await store.get(job_id)
        return row is not None and row.status.terminal

    await until(ended)
    return await store.get(job_id)


def test_a_restarted_runner_waits_for_the_jobs_modal_call_again(
    tiny_modal_app, in_process_classes, tmp_path: Path
):
    gated = PausingTextToImage()  # its steps wait until the gate opens
    classes = in_process_classes(gated)

    async def scenario() -> None:
        jobs = jobs_on_modal(tiny_modal_app, classes, tmp_path, "first")
        async with jobs as (door, first, store):
            try:
                submission = JobSubmission(pipeline="text-to-image", params=SMALL)
                job, _ = await door.submit("", submission, {}, None)

                async def has_call() -> bool:
                    row = await store.get(job.id)
                    return row is not None and row.call_id is not None

                await until(has_call)
                await first.stop()  # the adapter stops while the call runs on Modal
                (call,) = classes.calls
                assert not call.cancel_requested
                requeued = await store.get(job.id)
                assert requeued is not None and requeued.status is JobStatus.QUEUED
                assert requeued.call_id == call.object_id

                second = JobRunner(
                    first.settings, first.service, store, first.outputs, worker_id="second"
                )
                await second.start()
                try:
                    gated.gate.set()
                    ended = await until_ended(store, job.id)
                finally:
                    await second.stop()
                assert ended is not None and ended.status is JobStatus.SUCCEEDED, ended
                assert len(classes.calls) == 1  # waited for again, never spawned twice
                (output,) = ended.outputs
                png = await first.outputs.get(f"jobs/{job.id}/{output.name}")
                assert png.startswith(b"\x89PNG")
            finally:
                gated.gate.set()

    asyncio.run(scenario())


def test_a_jobs_steps_on_modal_become_its_progress_while_it_runs(
    tiny_modal_app, in_process_classes, tmp_path: Path
):
    gated = PausingTextToImage()  # held at a step until the gate opens
    classes = in_process_classes(gated)

    async def scenario() -> None:
        jobs = jobs_on_modal(tiny_modal_app, classes, tmp_path, "only")
        async with jobs as (door, runner, store):
            try:
                params = {**SMALL, "num_inference_steps": 4}
                submission = JobSubmission(pipeline="text-to-image", params=params)
                job, _ = await door.submit("", submission, {}, None)

                async def stepped() -> bool:
                    row = await store.get(job.id)
                    return row is not None and row.progress_step is not None

                await until(stepped)
                held = await store.get(job.id)
                assert held is not None and held.status is JobStatus.RUNNING
                assert (held.progress_total, held.progress_step) == (4, 1)  # held at step 1
                (call,) = classes.calls
                assert not call.task.done()  # told while the call runs on "Modal"
                gated.gate.set()
                ended = await until_ended(store, job.id)
                assert ended is not None and ended.status is JobStatus.SUCCEEDED, ended
                assert ended.progress_step is not None and ended.progress_step >= 1
                ttl = tiny_modal_app.PLAN.classes[0].stream_ttl_s
                assert set(classes.queue.ttls) == {ttl}
            finally:
                gated.gate.set()
                await runner.stop()

    asyncio.run(scenario())


def test_a_broken_progress_channel_never_fails_the_run(
    tiny_modal_app, in_process_classes, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    classes = in_process_classes()

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise modal.exception.ConnectionError("the Queue is unreachable")

    classes.queue.put_many = _Aio(down)  # the container cannot tell its steps
    classes.queue.get_many = _Aio(down)  # nor can the adapter read them
    steps: list[tuple[int, int]] = []
    models = tiny_modal_app.MODELS
    backend = ModalBackend(make_settings(tmp_path, backend="modal"), models, classes)

    async def scenario() -> Any:
        hooks = RunHooks(on_step=lambda step, total: steps.append((step, total)))
        return await backend.run(models[0], TextToImageParams(**SMALL), hooks)

    with caplog.at_level(logging.WARNING):
        response = asyncio.run(scenario())
    assert isinstance(response, ImageResponse) and len(response.images) == 1
    assert steps == []
    assert "could not tell a step" in caplog.text and "could not read the steps" in caplog.text


def test_an_app_deployed_before_run_reporting_runs_jobs_without_progress(
    tiny_modal_app, in_process_classes, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """An adapter upgraded before `modal deploy` ran again: the deployed class has no
    run_reporting, so Modal raises NotFoundError for it. The job runs on `run`, without
    progress, and the method is not asked for again."""
    classes = in_process_classes()
    asked: list[tuple[Any, ...]] = []

    async def no_such_method(*args: Any) -> Any:
        asked.append(args)
        raise modal.exception.NotFoundError("Class has no method run_reporting")

    models = tiny_modal_app.MODELS
    for name in classes.classes:
        classes.target(name).run_reporting = SimpleNamespace(spawn=_Aio(no_such_method))
    steps: list[tuple[int, int]] = []
    backend = ModalBackend(make_settings(tmp_path, backend="modal"), models, classes)

    async def scenario() -> list[Any]:
        hooks = RunHooks(on_step=lambda step, total: steps.append((step, total)))
        return [await backend.run(models[0], TextToImageParams(**SMALL), hooks) for _ in "ab"]

    with caplog.at_level(logging.WARNING):
        responses = asyncio.run(scenario())
    assert all(isinstance(r, ImageResponse) for r in responses)
    assert len(asked) == 1 and len(classes.calls) == 2 and steps == []
    assert "has no run_reporting" in caplog.text and "modal deploy modal_app.py" in caplog.text
