"""How the runner treats jobs: a queued job cancelled never starts, a running one stops between
steps and frees its model at once; a full queue answers 429 with Retry-After; downloads take
HTTP ranges."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapter.app import create_app
from adapter.backends.local import LocalBackend
from adapter.pipelines import PIPELINES
from contract.aimodels import merge_entries, parse_entries
from tests.support.apps import make_settings, running_client, sd_entry
from tests.support.jobs_api import error_of, jobs_settings, wait_for
from tests.support.pausing_glue import PausingTextToImage

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 4, "seed": 1}


def held_app(tmp_path: Path, entries: list, glue: PausingTextToImage, **settings):
    models = merge_entries(parse_entries(entries))
    app_settings = make_settings(tmp_path, **settings)
    backend = LocalBackend(app_settings, models, {**PIPELINES, glue.pipeline: glue})
    return create_app(app_settings, models, backend)


@pytest.fixture
def held(tmp_path: Path, tiny_sd: Path):
    """(client, glue, service): one model of capacity 1 whose jobs wait at each step."""
    glue = PausingTextToImage()
    app = held_app(tmp_path, [sd_entry(tiny_sd)], glue, jobs=jobs_settings(tmp_path, max_queued=2))
    with running_client(app) as client:
        yield client, glue, app.state.service
        glue.gate.set()


def submit(client, params=T2I):
    response = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": params})
    assert response.status_code == 202, response.text
    return response.json()


def wait_until(check, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_cancel_stops_a_running_job_between_steps_and_frees_its_model(held):
    client, glue, service = held
    job = submit(client)
    assert glue.at_step.wait(30)
    running = wait_for(client, job["id"], {"running"})
    wait_until(lambda: client.get(job["urls"]["self"]).json()["progress"] is not None)
    (limiter,) = service.limiters.values()
    assert limiter.in_flight == 1
    response = client.post(job["urls"]["cancel"])
    assert response.status_code == 200, response.text
    canceled = wait_for(client, job["id"])
    assert canceled["status"] == "canceled" and running["started_at"]
    assert canceled["progress"]["step"] < canceled["progress"]["total"]
    assert limiter.in_flight == 0  # the slot is free as soon as the job is cancelled
    glue.gate.set()
    assert wait_for(client, submit(client)["id"])["status"] == "succeeded"


def test_a_cancelled_queued_job_never_starts_and_a_full_queue_is_429(held):
    client, glue, _ = held
    first = submit(client)
    assert glue.at_step.wait(30)
    wait_for(client, first["id"], {"running"})
    second = submit(client)
    body = {"pipeline": "text-to-image", "params": T2I}
    keyed = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "third"})
    assert keyed.status_code == 202, keyed.text
    third = keyed.json()
    assert client.get(second["urls"]["self"]).json()["queue_position"] == 0
    assert client.get(third["urls"]["self"]).json()["queue_position"] == 1
    full = client.post("/v1/jobs", json=body)
    assert full.status_code == 429
    assert int(full.headers["retry-after"]) >= 1
    error = error_of(full)
    assert error["type"] == "queue_full" and "ADAPTER_JOBS_MAX_QUEUED" in error["message"]
    # A replay of a queued job is answered with it, full queue or not; a new key is refused
    # (by the store's own check, in the transaction that would queue it).
    replay = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "third"})
    assert replay.status_code == 202 and replay.json()["id"] == third["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    refused = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "fourth"})
    assert refused.status_code == 429 and error_of(refused)["type"] == "queue_full"
    canceled = client.post(second["urls"]["cancel"]).json()
    assert canceled["status"] == "canceled"
    assert client.get(third["urls"]["self"]).json()["queue_position"] == 0
    glue.gate.set()
    assert wait_for(client, first["id"])["status"] == "succeeded"
    assert wait_for(client, third["id"])["status"] == "succeeded"
    never = client.get(second["urls"]["self"]).json()
    assert never["status"] == "canceled"
    assert never["attempts"] == 0 and never["started_at"] is None


def test_downloads_answer_ranges(held):
    client, glue, _ = held
    glue.gate.set()
    done = wait_for(client, submit(client)["id"])
    url, size = done["urls"]["result"], done["result"]["outputs"][0]["size"]
    whole = client.get(url)
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-9/{size}"
    assert part.content == whole.content[:10]
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    rest = client.get(url, headers={"Range": f"bytes={size - 3}-"})
    assert rest.content == whole.content[-3:]
    assert client.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416


def test_one_token_cannot_fill_the_queue_for_the_others(tmp_path: Path, tiny_sd: Path):
    glue = PausingTextToImage()
    jobs = jobs_settings(tmp_path, max_queued_per_token=1)
    app = held_app(
        tmp_path, [sd_entry(tiny_sd, token="b-token")], glue, auth_token="a-token", jobs=jobs
    )
    a, b = ({"Authorization": f"Bearer {t}"} for t in ("a-token", "b-token"))
    body = {"pipeline": "text-to-image", "params": T2I}
    with running_client(app) as client:
        try:
            first = client.post("/v1/jobs", json=body, headers=a).json()
            assert glue.at_step.wait(30)
            wait_for(client, first["id"], {"running"}, headers=a)
            assert client.post("/v1/jobs", json=body, headers=a).status_code == 202
            full = client.post("/v1/jobs", json=body, headers=a)
            assert full.status_code == 429
            assert "ADAPTER_JOBS_MAX_QUEUED_PER_TOKEN" in error_of(full)["message"]
            assert client.post("/v1/jobs", json=body, headers=b).status_code == 202
        finally:
            glue.gate.set()
