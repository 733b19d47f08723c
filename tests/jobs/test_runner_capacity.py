"""The runner claims a job only when its model has a free slot: a job never shows `running`
while it merely waits for one, the other models' jobs are not starved behind it, and a runner
route's request still shares (and waits for) the same slots."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from adapter.app import create_app
from adapter.backends.local import LocalBackend
from adapter.pipelines import PIPELINES
from contract.aimodels import merge_entries, parse_entries
from tests.support.apps import make_settings, running_client, sd_entry
from tests.support.jobs_api import jobs_settings, wait_for
from tests.support.jobs_store import raw_rows
from tests.support.pausing_glue import PausingTextToImage

T2I = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 1}
A, B = "test/a", "test/b"


class RunningWatch:
    """Polls the jobs table (straight from SQLite) and keeps the most jobs of each model
    seen `running` at once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.most: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def running(self) -> Counter[str]:
        sql = "SELECT model_id, COUNT(*) FROM jobs WHERE status = 'running' GROUP BY model_id"
        return Counter({model: n for model, n in raw_rows(self.url, sql)})

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.most |= self.running()

    def __enter__(self) -> RunningWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_until(check: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_jobs_run_only_when_their_model_has_a_slot(tmp_path: Path, tiny_sd: Path) -> None:
    glue = PausingTextToImage()  # held at each step until the gate opens
    models = merge_entries(parse_entries([sd_entry(tiny_sd, A), sd_entry(tiny_sd, B)]))
    settings = make_settings(tmp_path, jobs=jobs_settings(tmp_path))
    backend = LocalBackend(settings, models, {**PIPELINES, glue.pipeline: glue})
    app = create_app(settings, models, backend)
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    with running_client(app) as client, RunningWatch(url) as watch:
        try:
            ids: dict[str, list[str]] = {A: [], B: []}
            for model in (A, A, A, A, B, B):
                body = {"pipeline": "text-to-image", "model_id": model, "params": T2I}
                response = client.post("/v1/jobs", json=body)
                assert response.status_code == 202, response.text
                ids[model].append(response.json()["id"])
            # B's first job runs though four of A's were queued before it.
            wait_until(lambda: watch.running() == Counter({A: 1, B: 1}))
            time.sleep(0.5)  # the runner has had time to claim more, had it wanted to
            assert watch.running() == Counter({A: 1, B: 1})
            queued = client.get("/v1/jobs", params={"status": "queued"}).json()["data"]
            assert sorted(j["id"] for j in queued) == sorted(ids[A][1:] + ids[B][1:])
            assert sorted(j["queue_position"] for j in queued) == [0, 1, 2, 3]

            # A runner route's request for A waits for A's slot, as before.
            limiter = app.state.service.limiters[next(m.key for m in models if m.model_id == A)]
            answers: list[int] = []
            route_body: dict[str, Any] = {"model_id": A, **T2I}
            route = threading.Thread(
                target=lambda: answers.append(
                    client.post("/text-to-image", json=route_body).status_code
                )
            )
            route.start()
            wait_until(lambda: limiter.queued == 1)
            glue.gate.set()
            route.join(120)
            assert answers == [200]
            for job_id in ids[A] + ids[B]:
                assert wait_for(client, job_id)["status"] == "succeeded"
        finally:
            glue.gate.set()
    assert watch.most == Counter({A: 1, B: 1})
