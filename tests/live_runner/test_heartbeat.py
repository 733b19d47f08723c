"""Dynamic registration against a test orchestrator that speaks go-livepeer's heartbeat protocol,
with the adapter as a real process: bootstrap, heartbeats at the returned interval with the
returned secret, status from the real model state, re-bootstrap after a 404, unregister on
SIGTERM."""

from __future__ import annotations

import itertools
import signal
import statistics
import time
from collections.abc import Callable

import httpx

from tests.live_runner.support import AdapterProcess, Call, TestOrchestrator
from tests.support.apps import sd_entry, serve

BOOTSTRAP_SECRET = "bootstrap-secret-for-the-test"
PATH_SECRET = "door-path-secret-0123456789"
GOOD, BROKEN = "text-to-image/test/tiny-sd", "text-to-image/test/broken"


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 120.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def beats(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.path == "/runners/heartbeat" and "runner_id" in c.body]


def test_register_heartbeat_follow_the_model_rebootstrap_and_unregister(tmp_path, tiny_sd):
    orchestrator = TestOrchestrator(BOOTSTRAP_SECRET, interval="300ms")
    (tmp_path / "empty").mkdir()
    entries = [
        sd_entry(tiny_sd, price_per_unit=1.9073484e-08, currency="USD"),
        # Its folder holds no model: the load fails.
        sd_entry(tmp_path / "empty", "test/broken", price_per_unit=1.9073484e-08, currency="USD"),
    ]
    with serve(orchestrator, settle=False) as orchestrator_url:  # type: ignore[arg-type]
        orchestrator.url = orchestrator_url
        adapter = AdapterProcess(
            tmp_path,
            entries,
            ADAPTER_LIVE_RUNNER_ORCHESTRATOR_URL=orchestrator_url,
            ADAPTER_LIVE_RUNNER_ORCH_SECRET=BOOTSTRAP_SECRET,
            ADAPTER_LIVE_RUNNER_PATH_SECRET=PATH_SECRET,
        )
        adapter.start()
        try:
            # Bootstrap with the orchestrator's secret, while the models still load.
            for app in (GOOD, BROKEN):
                first = wait_for(lambda app=app: orchestrator.of(app), f"{app} bootstrap")[0]
                assert first.authorization == BOOTSTRAP_SECRET
                assert "runner_id" not in first.body
                assert first.body["status"] == "loading"
                assert first.body["mode"] == "single-shot"
                assert first.body["runner_url"] == f"{adapter.door_url}/{PATH_SECRET}/{app}"
                assert first.body["capacity"] == 1
                assert first.body["price_info"]["currency"] == "usd"
                assert float(first.body["price_info"]["price"]) > 0

            # Heartbeats with the returned secret; ready once loaded, failed for the broken one.
            wait_for(
                lambda: any(c.body["status"] == "ready" for c in beats(orchestrator.of(GOOD))),
                "the good model ready",
            )
            wait_for(
                lambda: any(c.body["status"] == "failed" for c in beats(orchestrator.of(BROKEN))),
                "the broken one failed",
            )
            # The door's health says the same by status code.
            door = f"{adapter.door_url}/{PATH_SECRET}"
            assert httpx.get(f"{door}/{GOOD}/health", timeout=3).status_code == 200
            assert httpx.get(f"{door}/{BROKEN}/health", timeout=3).status_code == 503
            good_id = beats(orchestrator.of(GOOD))[0].body["runner_id"]
            good_secret = orchestrator.runners[good_id]
            assert all(c.authorization == good_secret for c in beats(orchestrator.of(GOOD)))
            assert not any(c.body["status"] == "ready" for c in orchestrator.of(BROKEN))
            statuses = [c.body["status"] for c in orchestrator.of(GOOD)]
            assert statuses[0] == "loading" and "ready" not in statuses[: statuses.index("ready")]

            # At the interval it returned (300 ms).
            wait_for(lambda: len(beats(orchestrator.of(GOOD))) >= 6, "six heartbeats")
            times = [c.at for c in beats(orchestrator.of(GOOD))]
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert 0.25 <= statistics.median(gaps) <= 0.7, gaps

            # Forgotten by the orchestrator (404): registers again with the bootstrap secret.
            orchestrator.forget(good_id)
            again = wait_for(
                lambda: [c for c in orchestrator.of(GOOD) if c.authorization == BOOTSTRAP_SECRET][
                    1:
                ],
                "a second bootstrap",
            )[0]
            assert "runner_id" not in again.body
            new_id = wait_for(
                lambda: [
                    c.body["runner_id"]
                    for c in beats(orchestrator.of(GOOD))
                    if c.body["runner_id"] != good_id
                ],
                "heartbeats again",
            )[0]
            assert new_id != good_id

            # SIGTERM: each registration leaves cleanly.
            secrets = dict(orchestrator.runners)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert adapter.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
            unregistered = [c for c in orchestrator.calls if c.path.endswith("/unregister")]
            assert {c.path for c in unregistered} == {
                f"/runners/{runner_id}/unregister" for runner_id in secrets
            }
            assert all(c.authorization == secrets[c.path.split("/")[2]] for c in unregistered)
            assert orchestrator.runners == {}
        finally:
            adapter.stop()
        log = adapter.log()
        assert "Live Runner" in log or "registered as" in log
        for secret in (BOOTSTRAP_SECRET, PATH_SECRET, *secrets.values()):
            assert secret not in log
        assert f"/<secret>/{GOOD}/health" in log  # the access log, redacted
        # Heartbeats are not logged one line each.
        assert log.count("/runners/heartbeat") < 3
