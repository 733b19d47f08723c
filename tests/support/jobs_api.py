"""The jobs door in tests: an app with it on (SQLite and a local output folder under the test's
tmp path, quick polls), and waiting for a job's state through the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from adapter.jobs.settings import JobsSettings
from tests.support.apps import make_app
from tests.support.webhook_receiver import Receiver

TERMINAL = {"succeeded", "failed", "canceled"}


def jobs_settings(tmp_path: Path, **overrides: Any) -> JobsSettings:
    fields: dict[str, Any] = {
        "enabled": True,
        "database_url": f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
        "outputs_url": str(tmp_path / "outputs"),
        "poll_interval_s": 0.05,
        "lease_s": 3.0,
    }
    return JobsSettings(**(fields | overrides))


def jobs_app(
    tmp_path: Path,
    entries: list[dict[str, Any]],
    jobs: dict[str, Any] | None = None,
    **settings: Any,
) -> FastAPI:
    """The app over the local backend with the jobs door on."""
    door = jobs_settings(tmp_path, **(jobs or {}))
    return make_app(tmp_path, entries, jobs=door, data_dir=tmp_path, **settings)


def wait_for(
    client: Any, job_id: str, statuses: set[str] = TERMINAL, timeout_s: float = 120.0, **kw: Any
) -> dict[str, Any]:
    """The job's JSON once its status is one of `statuses`."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", **kw).json()
        if job.get("status") in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.get('status')}: {job}")
        time.sleep(0.05)


def error_of(response: Any) -> dict[str, str]:
    """The door's error body, checked for its shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type"}, body
    assert body["error"]["message"], body
    return dict(body["error"])


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """The webhook receiver served on its own port from a thread (for tests whose app runs in
    a TestClient, not in the test's event loop)."""
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=receiver.port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the receiver did not start"
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
