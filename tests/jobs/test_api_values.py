"""On the real PostgreSQL: a submission holding a NUL character (U+0000, which PostgreSQL cannot
store) is a clear 400, never a 500; a job whose result the store cannot save ends failed with
why, instead of staying running and running again once its lease expires."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapter.jobs.model import JobStatus
from tests.support.apps import running_client, sd_entry
from tests.support.jobs_api import error_of, jobs_app, wait_for

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}


@pytest.fixture
def pg_app(tmp_path: Path, tiny_sd: Path, pg_url: str) -> Any:
    return jobs_app(tmp_path, [sd_entry(tiny_sd)], jobs={"database_url": pg_url, "lease_s": 1.5})


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"params": {**T2I, "prompt": "a\x00fox"}}, "params.prompt"),
        ({"params": T2I, "metadata": {"tags": ["ok", "b\x00d"]}}, "metadata.tags[1]"),
        ({"params": T2I, "metadata": {"k\x00": 1}}, "metadata.'k\\x00'"),
    ],
)
def test_a_nul_character_in_a_submission_is_a_400(
    pg_app: Any, body: dict[str, Any], where: str
) -> None:
    with running_client(pg_app) as client:
        response = client.post("/v1/jobs", json={"pipeline": "text-to-image", **body})
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["type"] == "invalid_request"
        assert where in error["message"] and "U+0000" in error["message"]
        form = {"pipeline": "text-to-image", "params": json.dumps(body["params"])}
        form["metadata"] = json.dumps(body.get("metadata", {}))
        assert client.post("/v1/jobs", data=form).status_code == 400
        assert client.get("/v1/jobs").json()["data"] == []


def test_a_result_the_store_cannot_save_fails_the_job_once(
    pg_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_client(pg_app) as client:
        store = pg_app.state.jobs.store
        real_finish = store.finish
        saves: list[JobStatus] = []

        async def refusing_finish(job_id: str, worker_id: str, status: JobStatus, **kw: Any) -> Any:
            saves.append(status)
            if status is JobStatus.SUCCEEDED:  # what PostgreSQL said of a NUL in a result
                raise psycopg.errors.UntranslatableCharacter("unsupported Unicode escape")
            return await real_finish(job_id, worker_id, status, **kw)

        monkeypatch.setattr(store, "finish", refusing_finish)
        response = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I})
        assert response.status_code == 202, response.text
        job = wait_for(client, response.json()["id"], timeout_s=60)
        assert job["status"] == "failed", job
        assert "could not save its result" in job["error"]["message"]
        assert "UntranslatableCharacter" in job["error"]["message"]
        assert job["error"]["retryable"] is False
        time.sleep(2 * 1.5)  # past a lease: it does not run again
        again = client.get(f"/v1/jobs/{job['id']}").json()
        assert (again["status"], again["attempts"]) == ("failed", 1)
        assert saves == [JobStatus.SUCCEEDED, JobStatus.FAILED]
