"""A job's webhook end to end: the signed event reaches a receiver that was down at first, and
a receiver that never answers does not hold the job up."""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapter.jobs.webhooks import verify_signature
from tests.support.apps import running_client, sd_entry
from tests.support.jobs_api import jobs_app, receiving, wait_for
from tests.support.webhook_receiver import Receiver

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}
SECRET = "a-webhook-secret"
QUICK = {"webhook_secret": SECRET, "webhook_backoff_base_s": 0.1, "webhook_poll_s": 0.05}


def test_the_signed_event_arrives_once_the_receiver_is_up(tmp_path: Path, tiny_sd: Path):
    receiver = Receiver(statuses=[503, 503, 200])
    app = jobs_app(tmp_path, [sd_entry(tiny_sd)], jobs=QUICK)
    with receiving(receiver), running_client(app) as client:
        body = {"pipeline": "text-to-image", "params": T2I, "webhook": receiver.url}
        job = client.post("/v1/jobs", json=body).json()
        done = wait_for(client, job["id"])
        assert done["status"] == "succeeded"
        deadline = time.monotonic() + 30
        while not receiver.answered_ok:
            assert time.monotonic() < deadline, receiver.requests
            time.sleep(0.05)
    (delivered,) = receiver.answered_ok
    assert len(receiver.requests) == 3
    assert verify_signature(SECRET, delivered.headers, delivered.body)
    event = json.loads(delivered.body)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["result"]["outputs"][0]["name"] == "image-0.png"
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert len(ids) == 1  # the same event each time: a receiver dedupes on it


def test_a_receiver_that_never_answers_does_not_delay_the_job(tmp_path: Path, tiny_sd: Path):
    receiver = Receiver(hang=True)
    jobs = {**QUICK, "webhook_timeout_s": 30}
    app = jobs_app(tmp_path, [sd_entry(tiny_sd)], jobs=jobs)
    with receiving(receiver), running_client(app) as client:
        plain = wait_for(
            client,
            client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I}).json()["id"],
        )
        started = time.monotonic()
        body = {"pipeline": "text-to-image", "params": T2I, "webhook": receiver.url}
        job = client.post("/v1/jobs", json=body).json()
        assert wait_for(client, job["id"])["status"] == "succeeded"
        assert plain["status"] == "succeeded"
        assert time.monotonic() - started < 20
        second = wait_for(client, client.post("/v1/jobs", json=body).json()["id"])
        assert second["status"] == "succeeded"
