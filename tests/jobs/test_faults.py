"""The jobs door survives its process dying: a real adapter process is SIGKILLed while a job
runs, and every job still ends (the killed one on another attempt), none is left running, and
the outputs download. With SQLite the same adapter restarts on the same files; with PostgreSQL
a second adapter on the same database takes the killed one's job over once its lease expires."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.apps import sd_entry
from tests.support.jobs_store import raw_rows
from tests.support.runner_process import RunnerProcess

MODEL_ID = "test/tiny-sd"
# Enough steps that a job runs for a while (about a second on a shared CPU): it is killed
# between its first and last step.
PARAMS = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 40, "seed": 7}
LEASE_S = 3.0
ENDED = {"succeeded", "failed", "canceled"}


def door_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "ADAPTER_JOBS_ENABLED": "true",
        "ADAPTER_DATA_DIR": str(tmp_path / "data"),
        "ADAPTER_JOBS_DATABASE_URL": database_url,
        # Every process shares the outputs folder (as replicas share S3).
        "ADAPTER_JOBS_OUTPUTS_URL": str(tmp_path / "outputs"),
        "ADAPTER_JOBS_LEASE_S": str(LEASE_S),
        "ADAPTER_JOBS_POLL_INTERVAL_S": "0.1",
        "ADAPTER_JOBS_MAX_ATTEMPTS": "3",
        "ADAPTER_JOBS_CONCURRENCY": "1",
    }


def submit(base: str) -> str:
    body = {"pipeline": "text-to-image", "model_id": MODEL_ID, "params": PARAMS}
    response = httpx.post(f"{base}/v1/jobs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def job_of(base: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_until_one_runs(base: str, ids: list[str], timeout_s: float = 120.0) -> str:
    """A job that has started its steps (and is far from its last one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job_id in ids:
            job = job_of(base, job_id)
            progress = job["progress"]
            if job["status"] == "running" and progress and progress["step"] < 20:
                return job_id
        time.sleep(0.02)
    raise AssertionError("no job started running")


def wait_all_ended(base: str, ids: list[str], timeout_s: float = 240.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [job_of(base, job_id) for job_id in ids]
        if all(job["status"] in ENDED for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not ended: {[(j['id'], j['status']) for j in jobs]}")
        time.sleep(0.1)


def kill(runner: RunnerProcess) -> None:
    assert runner.process is not None
    runner.process.send_signal(signal.SIGKILL)
    runner.process.wait(timeout=30)
    runner.process = None


def check_ended_well(base: str, jobs: list[dict[str, Any]], killed: str) -> None:
    for job in jobs:
        assert job["status"] in ("succeeded", "failed"), job
        if job["status"] == "failed":  # only past its attempts, with the reason
            assert job["attempts"] == job["max_attempts"], job
            assert "stopped" in job["error"]["message"], job
            continue
        (output,) = job["result"]["outputs"]
        image = httpx.get(f"{base}{output['url']}", timeout=30)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG"), output
        assert len(image.content) == output["size"]
    (victim,) = [job for job in jobs if job["id"] == killed]
    # The killed run counted as an attempt; the next one (a restart's or a replica's) finished.
    assert victim["status"] == "succeeded" and victim["attempts"] == 2, victim


def test_a_restart_after_sigkill_finishes_every_job(tmp_path: Path, tiny_sd: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'jobs.sqlite3'}"
    runner = RunnerProcess(tmp_path, [sd_entry(tiny_sd, MODEL_ID)], **door_env(tmp_path, url))
    runner.start()
    try:
        ids = [submit(runner.url) for _ in range(3)]
        killed = wait_until_one_runs(runner.url, ids)
        kill(runner)
        rows = raw_rows(url, f"SELECT status FROM jobs WHERE id = '{killed}'")
        assert rows == [("running",)]  # what the dead process left behind
        runner.start()
        jobs = wait_all_ended(runner.url, ids)
        check_ended_well(runner.url, jobs, killed)
        assert raw_rows(url, "SELECT COUNT(*) FROM jobs WHERE status = 'running'") == [(0,)]
    finally:
        runner.stop()


def test_a_replica_takes_over_the_job_of_one_killed(
    tmp_path: Path, tiny_sd: Path, pg_url: str
) -> None:
    entries = [sd_entry(tiny_sd, MODEL_ID)]
    env = door_env(tmp_path, pg_url)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = RunnerProcess(tmp_path / "a", entries, **env)
    second = RunnerProcess(tmp_path / "b", entries, **env)
    first.start()
    second.start()
    try:
        ids = [submit(first.url) for _ in range(4)]
        running = wait_until_one_runs(first.url, ids)
        ((owner,),) = raw_rows(pg_url, f"SELECT lease_owner FROM jobs WHERE id = '{running}'")
        # The worker id names its process: kill whichever adapter holds the job.
        pids = {first.process.pid: first, second.process.pid: second}  # type: ignore[union-attr]
        (victim,) = [r for pid, r in pids.items() if f":{pid}:" in owner]
        survivor = second if victim is first else first
        kill(victim)
        jobs = wait_all_ended(survivor.url, ids)
        check_ended_well(survivor.url, jobs, running)
        assert raw_rows(pg_url, "SELECT COUNT(*) FROM jobs WHERE status = 'running'") == [(0,)]
    finally:
        first.stop()
        second.stop()
