"""Every bad input to the jobs door is a clear 4xx in its own error body, never a 500 or a hang;
tokens see only their own jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.apps import running_client, sd_entry
from tests.support.jobs_api import error_of, jobs_app, wait_for
from tests.support.livepeer_multipart import png_bytes

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2}
TOKEN, OTHER = "secret-token-a", "secret-token-b"


@pytest.fixture
def client(tmp_path: Path, tiny_sd: Path):
    app = jobs_app(tmp_path, [sd_entry(tiny_sd)], limits={"max_request_bytes": 20_000})
    with running_client(app) as client:
        yield client


def refused(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["type"] == kind, error
    return error["message"]


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        ({"pipeline": "text-to-paint", "params": T2I}, "unknown_model", "Unknown pipeline"),
        ({"pipeline": "image-to-video", "params": {}}, "unknown_model", "not served"),
        ({"pipeline": "text-to-image", "model_id": "nope", "params": T2I}, "unknown_model", "nope"),
        ({"pipeline": "text-to-image", "params": {"width": 64}}, "invalid_request", "prompt"),
        (
            {"pipeline": "text-to-image", "params": {**T2I, "width": "wide"}},
            "invalid_request",
            "width",
        ),
        (
            {"pipeline": "text-to-image", "params": {**T2I, "num_inference_steps": 1000}},
            "limit_exceeded",
            "ADAPTER_MAX_INFERENCE_STEPS",
        ),
        ({"pipeline": "text-to-image", "params": T2I, "colour": 1}, "invalid_request", "colour"),
        (
            {"pipeline": "text-to-image", "params": T2I, "webhook": "ftp://x"},
            "invalid_request",
            "webhook",
        ),
        (
            {"pipeline": "text-to-image", "params": T2I, "metadata": {"note": "é" * 8200}},
            "limit_exceeded",
            "ADAPTER_JOBS_MAX_METADATA_BYTES=16384",
        ),
        ({"params": T2I}, "invalid_request", "pipeline"),
        ([1, 2], "invalid_request", "JSON object"),
    ],
)
def test_a_bad_submit_is_a_400_naming_what_is_wrong(client, body, kind, words):
    message = refused(client.post("/v1/jobs", json=body), 400, kind)
    assert words in message
    assert client.get("/v1/jobs").json()["data"] == []  # nothing was queued


def test_malformed_json_and_other_media_types_are_refused(client):
    headers = {"content-type": "application/json"}
    refused(
        client.post("/v1/jobs", content=b'{"pipeline": ', headers=headers), 400, "malformed_body"
    )
    text = {"content-type": "text/plain"}
    refused(client.post("/v1/jobs", content=b"hi", headers=text), 415, "unsupported_media_type")


def test_an_upload_a_json_pipeline_does_not_take_is_refused(client):
    response = client.post(
        "/v1/jobs",
        data={"pipeline": "text-to-image", "params": '{"prompt": "x"}'},
        files={"image": ("a.png", png_bytes(16, 16), "image/png")},
    )
    assert "not a file field" in refused(response, 400, "invalid_request")
    bad_json = client.post("/v1/jobs", data={"pipeline": "text-to-image", "params": "{"})
    assert "not valid JSON" in refused(bad_json, 400, "invalid_request")


def test_an_oversized_upload_is_413_naming_the_limit(client):
    response = client.post(
        "/v1/jobs",
        data={"pipeline": "text-to-image", "prompt": "x"},
        files={"image": ("big.png", b"\0" * 30_000, "image/png")},
    )
    assert "ADAPTER_MAX_REQUEST_BYTES" in refused(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/job_00000000000000000000000000"),
        ("GET", "/v1/jobs/nonsense"),
        ("GET", "/v1/jobs/job_00000000000000000000000000/events"),
        ("GET", "/v1/jobs/job_00000000000000000000000000/result"),
        ("POST", "/v1/jobs/job_00000000000000000000000000/cancel"),
        ("POST", "/v1/jobs/job_00000000000000000000000000/enhance"),
        ("GET", "/v1/jobs/job_00000000000000000000000000/what"),
    ],
)
def test_an_unknown_job_is_404(client, method, path):
    refused(client.request(method, path), 404, "not_found")


def test_bad_list_queries_are_400(client):
    refused(client.get("/v1/jobs", params={"limit": 0}), 400, "invalid_request")
    refused(client.get("/v1/jobs", params={"status": "sleeping"}), 400, "invalid_request")
    refused(client.get("/v1/jobs", params={"cursor": "!!"}), 400, "invalid_request")
    refused(client.get("/v1/jobs", params={"created_after": "soon"}), 400, "invalid_request")


def test_an_ended_job_cannot_be_cancelled_and_a_failed_one_not_enhanced(client):
    job = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I}).json()
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded"
    assert "already ended" in refused(client.post(done["urls"]["cancel"]), 409, "conflict")
    missing = client.get(f"{done['urls']['self']}/outputs/image-9.png")
    refused(missing, 404, "not_found")
    ranged = client.get(done["urls"]["result"], headers={"Range": "bytes=999999-"})
    assert ranged.status_code == 416
    assert ranged.headers["content-range"] == f"bytes */{done['result']['outputs'][0]['size']}"
    assert "past the end" in refused(ranged, 416, "range_not_satisfiable")


def test_a_failed_job_cannot_be_enhanced(tmp_path: Path):
    missing = sd_entry(tmp_path / "no-weights-here")
    app = jobs_app(tmp_path, [missing], jobs={"max_attempts": 2})
    with running_client(app) as client:
        job = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I}).json()
        failed = wait_for(client, job["id"])
        assert failed["status"] == "failed"
        assert failed["attempts"] == 2
        assert "failed to load" in failed["error"]["message"]
        assert failed["error"]["retryable"] is True
        message = refused(client.post(failed["urls"]["enhance"]), 409, "conflict")
        assert "only a succeeded job" in message
        refused(client.get(failed["urls"]["result"]), 409, "conflict")


def test_tokens_see_only_their_own_jobs(tmp_path: Path, tiny_sd: Path):
    app = jobs_app(tmp_path, [sd_entry(tiny_sd, token=OTHER)], auth_token=TOKEN)
    mine, theirs = ({"Authorization": f"Bearer {t}"} for t in (TOKEN, OTHER))
    with running_client(app) as client:
        body = {"pipeline": "text-to-image", "params": T2I}
        assert "Invalid bearer token" in refused(
            client.post("/v1/jobs", json=body), 401, "unauthorized"
        )
        wrong = {"Authorization": "Bearer nope"}
        refused(client.get("/v1/jobs", headers=wrong), 401, "unauthorized")
        job = client.post("/v1/jobs", json=body, headers=mine).json()
        assert client.get(job["urls"]["self"], headers=mine).status_code == 200
        refused(client.get(job["urls"]["self"], headers=theirs), 404, "not_found")
        refused(client.post(job["urls"]["cancel"], headers=theirs), 404, "not_found")
        assert client.get("/v1/jobs", headers=theirs).json()["data"] == []
        assert [j["id"] for j in client.get("/v1/jobs", headers=mine).json()["data"]] == [job["id"]]
        wait_for(client, job["id"], headers=mine)


def test_the_openapi_document_describes_the_door(client):
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/v1/jobs"]) == {"get", "post"}
    submit = paths["/v1/jobs"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"202", "400", "401", "413", "429"} <= set(submit["responses"])
    for path in (
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/result",
        "/v1/jobs/{job_id}/outputs/{name}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/enhance",
    ):
        assert path in paths, path
    assert {"Job", "JobList", "ErrorBody"} <= set(document["components"]["schemas"])
