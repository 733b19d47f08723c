"""Dynamic registration: each app heartbeats to the orchestrator (LIVE-RUNNER.md §6, §10.2.1).

    POST {orchestrator}/runners/heartbeat      Authorization: <orchSecret>   (bootstrap)
      -> runner_id, heartbeat_secret, heartbeat_interval ("5s"), orchestrator, session_ids
    POST {orchestrator}/runners/heartbeat      Authorization: <heartbeat_secret>, every interval
      404 or 401 -> bootstrap again (the runner expired or was swept)
    POST {orchestrator}/runners/{id}/unregister                                  (shutdown)

Every heartbeat carries the whole registration, rebuilt each time: `status` from the model's
real state (`ready` only when it can serve now), capacity and price as they are then. Failures
back off exponentially (with jitter) up to heartbeat_max_backoff_s and are logged when they
start, change or end, never once per attempt. No secret is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapter.backends.base import ModelState
from adapter.live_runner.apps import LiveApp
from adapter.live_runner.prices import Quote
from adapter.live_runner.registration import json_number, runner_fields
from adapter.service import RunnerService

logger = logging.getLogger(__name__)

HEARTBEAT_PATH = "/runners/heartbeat"
DEFAULT_INTERVAL_S = 5.0
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 300.0
UNREGISTER_TIMEOUT_S = 3.0
STATUS_BY_STATE = {
    ModelState.READY: "ready",
    ModelState.COLD: "ready",  # it loads on its first request
    ModelState.LOADING: "loading",
    ModelState.FAILED: "failed",
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: Any) -> float | None:
    """Seconds of a Go `time.Duration.String()` ("5s", "1m30s", "250ms"); None if not one."""
    if not isinstance(text, str) or not text:
        return None
    parts = _DURATION_PART.findall(text)
    if "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


class _Rebootstrap(Exception):
    """The orchestrator no longer knows this registration (404) or its secret (401)."""


class _Failed(Exception):
    """This attempt failed; `kind` groups failures for logging."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class _Registration:
    app: LiveApp
    runner_id: str = ""
    secret: str = field(default="", repr=False)
    orchestrator: str = ""
    interval_s: float = DEFAULT_INTERVAL_S
    session_ids: list[str] = field(default_factory=list)
    status: str = ""

    def forget(self) -> None:
        self.runner_id, self.secret, self.session_ids = "", "", []


class _QuietHeartbeats(logging.Filter):
    """Keeps httpx's one-line-per-request INFO log out of the log for heartbeats."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(HEARTBEAT_PATH in str(arg) for arg in (record.args or ()))


class HeartbeatClient:
    def __init__(
        self,
        service: RunnerService,
        apps: list[LiveApp],
        door_url: str,
        price_for: Callable[[LiveApp], Quote],
        client: httpx.AsyncClient | None = None,
    ) -> None:
        live = service.settings.live_runner
        self.service = service
        self.door_url = door_url
        self.price_for = price_for
        self.orchestrator = live.orchestrator_url.rstrip("/")
        self._bootstrap_secret = live.orch_secret.get_secret_value()
        self.max_backoff_s = live.heartbeat_max_backoff_s
        self._client = client or httpx.AsyncClient(timeout=live.heartbeat_timeout_s)
        self._registrations = [_Registration(app) for app in apps]
        self._tasks: list[asyncio.Task[None]] = []
        self._filter = _QuietHeartbeats()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        logging.getLogger("httpx").addFilter(self._filter)
        self._tasks = [asyncio.create_task(self._run(reg)) for reg in self._registrations]

    async def close(self) -> None:
        """Stop heartbeating and unregister every registered app (errors only logged)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._unregister(reg) for reg in self._registrations))
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._filter)

    # --- the loop ----------------------------------------------------------------------

    async def _run(self, reg: _Registration) -> None:
        failures, last_kind = 0, ""
        while True:
            try:
                await (self._beat(reg) if reg.secret else self._bootstrap(reg))
            except _Rebootstrap as exc:
                logger.info(
                    "%s: the orchestrator answered %s; registering again", reg.app.app_id, exc
                )
                reg.forget()
                continue
            except _Failed as exc:
                failures += 1
                if exc.kind != last_kind:
                    logger.warning(
                        "%s: heartbeat failed: %s (retrying with back-off)",
                        reg.app.app_id,
                        exc.kind,
                    )
                    last_kind = exc.kind
                delay = min(self.max_backoff_s, reg.interval_s * 2 ** min(failures, 16))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                continue
            if failures:
                logger.info(
                    "%s: heartbeats answered again after %d failure(s)", reg.app.app_id, failures
                )
                failures, last_kind = 0, ""
            await asyncio.sleep(reg.interval_s)

    def payload(self, reg: _Registration) -> dict[str, Any]:
        """The whole registration as it is now (status, capacity and price included)."""
        app = reg.app
        fields = runner_fields(self.service.settings, app, self.door_url, self.price_for(app))
        fields["status"] = STATUS_BY_STATE[self.service.backend.state(app.model)]
        if reg.runner_id:
            fields["runner_id"] = reg.runner_id
            fields["session_ids"] = reg.session_ids
        return fields

    async def _post(self, url: str, secret: str, body: dict[str, Any] | None) -> httpx.Response:
        try:
            return await self._client.post(
                url,
                content=b"" if body is None else json.dumps(body, default=json_number).encode(),
                headers={"Authorization": secret, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise _Failed(f"{type(exc).__name__} from {url}") from None

    def _read(self, reg: _Registration, response: httpx.Response) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("runner_id"), str):
            raise _Failed(f"answer {response.status_code} without a runner_id")
        interval = parse_go_duration(answer.get("heartbeat_interval"))
        if interval is not None:
            reg.interval_s = min(max(interval, MIN_INTERVAL_S), MAX_INTERVAL_S)
        ids = answer.get("session_ids")
        reg.session_ids = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
        return answer

    @staticmethod
    def _refusal(response: httpx.Response) -> str:
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        return f"{response.status_code} {text}".strip()

    async def _bootstrap(self, reg: _Registration) -> None:
        payload = self.payload(reg)
        response = await self._post(
            self.orchestrator + HEARTBEAT_PATH, self._bootstrap_secret, payload
        )
        if response.status_code != 200:
            # 401: wrong ADAPTER_LIVE_RUNNER_ORCH_SECRET; 404: dynamic registration disabled.
            raise _Failed(f"registration refused: {self._refusal(response)}")
        answer = self._read(reg, response)
        secret = answer.get("heartbeat_secret")
        if not isinstance(secret, str) or not secret:
            raise _Failed("registration answer without a heartbeat_secret")
        orchestrator = answer.get("orchestrator")
        reg.orchestrator = (
            orchestrator.rstrip("/")
            if isinstance(orchestrator, str) and orchestrator.startswith(("http://", "https://"))
            else self.orchestrator
        )
        reg.runner_id, reg.secret = answer["runner_id"], secret
        reg.status = payload["status"]
        logger.info(
            "%s: registered as %s (status %s, heartbeat every %gs)",
            reg.app.app_id,
            reg.runner_id,
            reg.status,
            reg.interval_s,
        )

    async def _beat(self, reg: _Registration) -> None:
        payload = self.payload(reg)
        response = await self._post(reg.orchestrator + HEARTBEAT_PATH, reg.secret, payload)
        if response.status_code in (401, 404):
            raise _Rebootstrap(str(response.status_code))
        if response.status_code != 200:
            raise _Failed(f"heartbeat refused: {self._refusal(response)}")
        self._read(reg, response)
        if payload["status"] != reg.status:
            logger.info("%s: status %s", reg.app.app_id, payload["status"])
            reg.status = payload["status"]

    async def _unregister(self, reg: _Registration) -> None:
        if not reg.secret:
            return
        url = f"{reg.orchestrator}/runners/{reg.runner_id}/unregister"
        try:
            response = await self._client.post(
                url, headers={"Authorization": reg.secret}, timeout=UNREGISTER_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "%s: unregistering %s failed: %s", reg.app.app_id, reg.runner_id, type(exc).__name__
            )
            return
        logger.info("%s: unregistered %s (%d)", reg.app.app_id, reg.runner_id, response.status_code)
        reg.forget()
