"""The jobs API end to end on tiny text-to-image and image-to-image models: submit, progress to
the last step, the PNG result, enhance, cancel, idempotency, pagination, events."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.support.apps import model_entry, running_client, sd_entry
from tests.support.jobs_api import error_of, jobs_app, wait_for
from tests.support.livepeer_multipart import png_bytes

T2I = {"prompt": "a red fox", "width": 64, "height": 64, "num_inference_steps": 3, "seed": 7}


@pytest.fixture
def client(tmp_path: Path, tiny_sd: Path):
    entries = [sd_entry(tiny_sd), model_entry("image-to-image", tiny_sd, "test/tiny-img2img")]
    with running_client(jobs_app(tmp_path, entries)) as client:
        yield client


def submit(client, params=T2I, pipeline="text-to-image", **fields):
    response = client.post("/v1/jobs", json={"pipeline": pipeline, "params": params, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def test_text_to_image_job_runs_to_a_png_with_progress_at_its_total(client):
    job = submit(client, metadata={"mine": 1})
    assert job["id"].startswith("job_") and len(job["id"]) == 30
    assert job["status"] in ("queued", "running")
    assert job["urls"]["self"] == f"/v1/jobs/{job['id']}"
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"step": 3, "total": 3, "fraction": 1.0}
    assert done["attempts"] == 1 and done["metadata"] == {"mine": 1}
    assert done["result"]["data"]["seed"] == 7
    (output,) = done["result"]["outputs"]
    assert output["name"] == "image-0.png" and output["content_type"] == "image/png"
    result = client.get(done["urls"]["result"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(result.content)).size == (64, 64)
    assert client.get(output["url"]).content == result.content
    assert len(result.content) == output["size"]


def test_image_to_image_job_takes_a_multipart_upload(client):
    response = client.post(
        "/v1/jobs",
        data={"pipeline": "image-to-image", "prompt": "a cat", "num_inference_steps": "4"},
        files={"image": ("in.png", png_bytes(64, 64), "image/png")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["params"]["image"]["$upload"] == "image"
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["step"] == done["progress"]["total"]
    png = client.get(done["urls"]["result"]).content
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_enhance_reruns_the_prompt_and_seed_with_more_steps(client):
    draft = wait_for(client, submit(client, params={**T2I, "seed": None})["id"])
    response = client.post(draft["urls"]["enhance"])
    assert response.status_code == 202, response.text
    enhanced = response.json()
    assert enhanced["parent_id"] == draft["id"]
    assert enhanced["params"]["prompt"] == T2I["prompt"]
    assert enhanced["params"]["seed"] == draft["result"]["data"]["seed"]
    assert enhanced["params"]["num_inference_steps"] == 50
    assert wait_for(client, enhanced["id"])["status"] == "succeeded"
    # A draft that already ran the enhanced steps (here, as at the request's default of 50)
    # is enhanced to twice its steps, up to ADAPTER_MAX_INFERENCE_STEPS (100)...
    again = client.post(wait_for(client, enhanced["id"])["urls"]["enhance"])
    assert again.status_code == 202, again.text
    assert again.json()["params"]["num_inference_steps"] == 100
    default_draft = wait_for(client, submit(client, params={"prompt": "a fox", "width": 64})["id"])
    from_default = client.post(default_draft["urls"]["enhance"])
    assert from_default.json()["params"]["num_inference_steps"] == 100
    # ...and one at that limit cannot be enhanced further.
    at_limit = client.post(wait_for(client, again.json()["id"])["urls"]["enhance"])
    assert at_limit.status_code == 409, at_limit.text
    message = at_limit.json()["error"]["message"]
    assert "already ran with its enhanced settings" in message
    assert "ADAPTER_MAX_INFERENCE_STEPS" in message


def test_the_same_idempotency_key_returns_the_first_job(client):
    headers = {"Idempotency-Key": "abc-1"}
    body = {"pipeline": "text-to-image", "params": T2I}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I})
    assert other.json()["id"] != first.json()["id"]


def test_listing_pages_newest_first_with_filters(client):
    ids = [submit(client)["id"] for _ in range(3)]
    for job_id in ids:
        wait_for(client, job_id)
    first = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in first["data"]] == ids[::-1][:2]
    second = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [job["id"] for job in second["data"]] == [ids[0]]
    assert second["next_cursor"] is None
    done = client.get("/v1/jobs", params={"status": "succeeded", "pipeline": "text-to-image"})
    assert len(done.json()["data"]) == 3
    assert client.get("/v1/jobs", params={"status": "failed"}).json()["data"] == []


def test_events_stream_the_job_until_it_ends(client):
    job = submit(client)
    with client.stream("GET", job["urls"]["events"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[len("data: ") :])
            for line in stream.iter_lines()
            if line.startswith("data: ")
        ]
    assert events[-1]["status"] == "succeeded"
    assert all(event["id"] == job["id"] for event in events)
    assert len({json.dumps(event, sort_keys=True) for event in events}) == len(events)


def test_cancel_of_an_ended_job_is_409_and_enhance_of_a_failed_one_409(client):
    done = wait_for(client, submit(client)["id"])
    response = client.post(done["urls"]["cancel"])
    assert response.status_code == 409
    assert error_of(response)["type"] == "conflict"
