"""The heartbeat client's decisions, against an orchestrator faked at the transport."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from adapter.backends.base import ModelState
from adapter.live_runner.apps import live_apps
from adapter.live_runner.heartbeat import HeartbeatClient, parse_go_duration
from adapter.live_runner.server import PriceBook
from adapter.service import RunnerService
from adapter.settings import LiveRunnerSettings
from contract.aimodels import merge_entries, parse_entries
from tests.support.apps import make_settings, model_entry
from tests.support.fake_backend import FakeBackend


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("300ms", 0.3),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("2h", 7200.0),
        ("", None),
        ("5", None),
        ("fast", None),
        (5, None),
    ],
)
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == seconds


def results(tmp_path, seconds: float) -> None:
    (tmp_path / "results.json").write_text(
        json.dumps(
            {
                "format": "modal-ai-runner-bench/1",
                "results": [
                    {
                        "pipeline": "text-to-image",
                        "model_id": "test/sd",
                        "gpu": "L40S",
                        "request": {},
                        "seconds_per_job": seconds,
                        "runs": 1,
                        "cold_start_seconds": 1,
                        "measured_at": "2026-11-30",
                    }
                ],
            }
        )
    )


def client_for(tmp_path, handler, backend=None, **live):
    results(tmp_path, 1.0)
    settings = make_settings(
        tmp_path,
        live_runner=LiveRunnerSettings(
            port=8935,
            orchestrator_url="http://orch.test",
            orch_secret="boot",
            results=tmp_path / "results.json",
            jobs_per_hour=100,
            heartbeat_max_backoff_s=0.2,
            **live,
        ),
    )
    models = merge_entries(
        parse_entries([model_entry("text-to-image", tmp_path, "test/sd", warm=False)])
    )
    service = RunnerService(settings, models, backend or FakeBackend())
    transport = httpx.MockTransport(handler)
    return HeartbeatClient(
        service,
        live_apps(models),
        "http://127.0.0.1:8935",
        PriceBook(settings, service),
        httpx.AsyncClient(transport=transport),
    )


def test_failures_back_off_and_are_logged_once(tmp_path, caplog):
    seen: list[float] = []

    def down(request: httpx.Request) -> httpx.Response:
        seen.append(asyncio.get_event_loop().time())
        return httpx.Response(500, text="orchestrator broken\n")

    async def scenario() -> None:
        client = client_for(tmp_path, down)
        await client.start()
        await asyncio.sleep(1.5)
        await client.close()

    with caplog.at_level(logging.INFO, logger="adapter.live_runner.heartbeat"):
        asyncio.run(scenario())
    # Backed off (capped at 0.2 s, jittered), not a request per event-loop turn.
    assert 4 <= len(seen) <= 20
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "500 orchestrator broken" in warnings[0].getMessage()
    assert "boot" not in caplog.text


def test_401_rebootstraps_and_prices_follow_the_results_file(tmp_path):
    calls: list[tuple[str, dict]] = []

    unregistered: list[str] = []

    def orchestrator(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/unregister"):
            unregistered.append(request.url.path)
            return httpx.Response(204)
        body = json.loads(request.content)
        calls.append((request.headers["authorization"], body))
        if "runner_id" not in body:
            return httpx.Response(
                200,
                json={
                    "runner_id": f"r{len(calls)}",
                    "heartbeat_secret": f"hb{len(calls)}",
                    "heartbeat_interval": "50ms",
                    "session_ids": ["s1"],
                },
            )
        if len(calls) == 3:
            return httpx.Response(401, text="invalid heartbeat authorization")
        return httpx.Response(
            200,
            json={
                "runner_id": body["runner_id"],
                "heartbeat_interval": "50ms",
                "session_ids": ["s1"],
            },
        )

    backend = FakeBackend(states={"text-to-image/test/sd": ModelState.LOADING})

    async def scenario() -> None:
        client = client_for(tmp_path, orchestrator, backend)
        await client.start()
        await asyncio.sleep(0.5)
        backend.states.clear()  # loaded
        results(tmp_path, 2.0)  # measured again: twice the seconds
        await asyncio.sleep(0.5)
        await client.close()

    asyncio.run(scenario())
    auths = [auth for auth, _ in calls]
    assert auths[:3] == ["boot", "hb1", "hb1"] and auths[3] == "boot"  # 401 -> bootstrap
    beats = [body for _, body in calls if "runner_id" in body]
    assert all(body["session_ids"] == ["s1"] for body in beats)  # echoed as the orchestrator said
    assert beats[0]["status"] == "loading" and beats[-1]["status"] == "ready"
    prices = [float(body["price_info"]["price"]) for _, body in calls]
    assert prices[-1] > prices[0]
    assert unregistered == [f"/runners/{beats[-1]['runner_id']}/unregister"]
