"""Saving a job's end when the store fails: a blip is tried again and the finished work kept; a
store down through every try gets the job back by its lease, to run again; an end the store
refuses for good leaves the job failed with why, never running again."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import adapter.jobs.runner as runner_module
from adapter.jobs.model import JobStatus
from adapter.jobs.outcomes import UNSAVED_MSG
from tests.support.apps import running_client, sd_entry
from tests.support.jobs_api import jobs_app, wait_for

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}


class FlakyFinish:
    """The real store's `finish`, refusing the ends whose status is in `refuse` the first
    `times` calls of each (times=None: always)."""

    def __init__(
        self,
        real: Any,
        refuse: set[JobStatus],
        times: int | None,
        error: Exception | None = None,
    ) -> None:
        self.real = real
        self.refuse = refuse
        self.times = times
        self.error = error or ConnectionError("the store's connection dropped")
        self.calls: list[JobStatus] = []

    async def __call__(self, job_id: str, worker_id: str, status: JobStatus, **kw: Any) -> Any:
        self.calls.append(status)
        refused = sum(1 for s in self.calls if s == status) - 1
        if status in self.refuse and (self.times is None or refused < self.times):
            raise self.error
        return await self.real(job_id, worker_id, status, **kw)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "SAVE_RETRY_DELAYS_S", (0.05, 0.1, 0.2))


def run_one(tmp_path: Path, tiny_sd: Path, flaky: dict[str, Any]) -> tuple[Any, FlakyFinish, Any]:
    app = jobs_app(tmp_path, [sd_entry(tiny_sd)])
    with running_client(app) as client:
        store = app.state.jobs.store
        finish = FlakyFinish(store.finish, **flaky)
        store.finish = finish
        response = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I})
        assert response.status_code == 202, response.text
        done = wait_for(client, response.json()["id"])
        image = client.get(done["urls"]["result"]) if done["status"] == "succeeded" else None
    return done, finish, image


def test_a_store_blip_at_the_end_keeps_the_finished_job(tmp_path, tiny_sd, caplog):
    done, finish, image = run_one(tmp_path, tiny_sd, {"refuse": {JobStatus.SUCCEEDED}, "times": 2})
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1  # saved on the third try, not run again
    assert finish.calls == [JobStatus.SUCCEEDED] * 3
    assert image is not None and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)
    assert "trying again in 0.05 s" in caplog.text


def test_a_store_down_through_every_try_runs_the_job_again_once_it_is_back(tmp_path, tiny_sd):
    done, finish, image = run_one(tmp_path, tiny_sd, {"refuse": {JobStatus.SUCCEEDED}, "times": 4})
    # The first attempt's end failed all four tries and was not written as a failure; its lease
    # ran out, recovery queued it, and the second attempt's end saved.
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2
    assert finish.calls == [JobStatus.SUCCEEDED] * 5
    assert image is not None and image.headers["content-type"] == "image/png"


def test_an_end_the_store_refuses_for_good_fails_the_job_once_with_why(tmp_path, tiny_sd):
    done, finish, _image = run_one(
        tmp_path,
        tiny_sd,
        {"refuse": {JobStatus.SUCCEEDED}, "times": None, "error": ValueError("bad value")},
    )
    assert done["status"] == "failed", done
    assert done["error"] == {"message": UNSAVED_MSG.format("ValueError"), "retryable": False}
    assert done["attempts"] == 1
    assert finish.calls == [JobStatus.SUCCEEDED, JobStatus.FAILED]  # not tried again


def test_postgresql_ending_every_pooled_connection_at_the_end_loses_nothing(
    tmp_path, tiny_sd, pg_url, caplog
):
    """The server ends all of the store's connections just as the job's end is saved: the pool
    replaces them before use, the job is saved once, and the API never answers a 500."""
    import uuid

    import psycopg

    from tests.support.jobs_store import PG_URL

    name = f"jobs-save-{uuid.uuid4().hex[:8]}"
    app = jobs_app(
        tmp_path, [sd_entry(tiny_sd)], jobs={"database_url": f"{pg_url}&application_name={name}"}
    )
    with running_client(app) as client:
        store = app.state.jobs.store
        real_finish = store.finish
        dropped: list[int] = []

        async def finish_after_the_server_drops_us(*args: Any, **kw: Any) -> Any:
            if not dropped:  # once: the server ends every connection of this app's pool
                with psycopg.connect(PG_URL, autocommit=True) as admin:
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s",
                        (name,),
                    ).fetchall()
                dropped.append(len(rows))
            return await real_finish(*args, **kw)

        store.finish = finish_after_the_server_drops_us
        response = client.post("/v1/jobs", json={"pipeline": "text-to-image", "params": T2I})
        assert response.status_code == 202, response.text
        done = wait_for(client, response.json()["id"], timeout_s=60)
        assert dropped and dropped[0] >= 1, "no connection of the pool was dropped"
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1
        for _ in range(5):  # every pooled connection was ended: each read still answers
            assert client.get(f"/v1/jobs/{done['id']}").status_code == 200
    assert "unexpected error" not in caplog.text
