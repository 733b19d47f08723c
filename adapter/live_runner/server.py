"""The door's lifecycle in the adapter process: its listener, the heartbeats, the safety checks.

The door is off unless ADAPTER_LIVE_RUNNER_PORT (its own listener, loopback by default) or
ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN is set. go-livepeer sends the runner no Authorization header,
so a door reachable from elsewhere must be closed some other way: it refuses to start on a
non-loopback address (or on the adapter's own port, whose address it cannot see) without a path
secret, unless ADAPTER_LIVE_RUNNER_ALLOW_UNAUTHENTICATED=true says the network takes care of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from adapter.live_runner.apps import LiveApp, live_apps
from adapter.live_runner.heartbeat import HeartbeatClient
from adapter.live_runner.prices import PriceOptions, Quote, quote_all
from adapter.live_runner.registration import configured_entries, door_base_url
from adapter.live_runner.routes import Door, DoorOnMain
from adapter.service import RunnerService
from adapter.settings import LiveRunnerSettings, Settings
from contract.errors import ConfigError

logger = logging.getLogger(__name__)

MIN_SECRET_CHARS = 16
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9._~-]+$")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve to anything


def check_exposure(live: LiveRunnerSettings) -> None:
    """Refuse a door that anyone who reaches its address could use (ConfigError)."""
    secret = live.path_secret.get_secret_value()
    if secret and (len(secret) < MIN_SECRET_CHARS or not _SECRET_CHARS.match(secret)):
        raise ConfigError(
            f"ADAPTER_LIVE_RUNNER_PATH_SECRET must be at least {MIN_SECRET_CHARS} URL-safe "
            'characters (letters, digits, . _ ~ -), e.g. from `python -c "import secrets; '
            'print(secrets.token_urlsafe(24))"`'
        )
    if secret or live.allow_unauthenticated:
        return
    why = (
        "go-livepeer sends the runner no Authorization header, so anyone who reaches the door "
        "could run the GPUs: set ADAPTER_LIVE_RUNNER_PATH_SECRET (a secret path segment only "
        "runners.json holds), or ADAPTER_LIVE_RUNNER_ALLOW_UNAUTHENTICATED=true if the network in "
        "between is private or something in front authenticates"
    )
    if live.port and not is_loopback(live.host):
        raise ConfigError(
            f"the Live Runner door would listen on ADAPTER_LIVE_RUNNER_HOST={live.host}, which is "
            f"not a loopback address, without authentication: {why}"
        )
    if live.serve_on_main:
        raise ConfigError(
            "ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN=true puts the door on the adapter's own port, "
            f"whose address the adapter cannot check, without authentication: {why}"
        )


class _RedactSecret(logging.Filter):
    """Keeps the path secret out of access logs (it is in every request line of the door)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.replace(self.secret, "<secret>") if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


class PriceBook:
    """Each app's quote, computed again when the results file changes."""

    def __init__(self, settings: Settings, service: RunnerService) -> None:
        live = settings.live_runner
        self.options = PriceOptions(
            unit=live.price_unit,
            margin=live.price_margin,
            results=live.results,
            jobs_per_hour=live.jobs_per_hour,
        )
        self.models = service.models
        self.entries = configured_entries(settings) if settings.models_config else []
        self._stamp = self._results_stamp()
        self.quotes = quote_all(self.models, self.entries, self.options)

    def _results_stamp(self) -> float | None:
        path: Path | None = self.options.results
        with contextlib.suppress(OSError):
            return path.stat().st_mtime if path else None
        return None

    def __call__(self, app: LiveApp) -> Quote:
        stamp = self._results_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.quotes = quote_all(self.models, self.entries, self.options)
            except ConfigError as exc:
                logger.warning("keeping the previous Live Runner prices: %s", exc)
        return self.quotes[app.model.key]


class LiveRunner:
    """The door of one adapter: built with the app, started and closed by its lifespan."""

    def __init__(self, settings: Settings, service: RunnerService) -> None:
        live = settings.live_runner
        check_exposure(live)
        self.settings = live
        self.secret = live.path_secret.get_secret_value()
        self.apps = live_apps(service.models, live.label_prefix)
        self.door = Door(service, self.apps, self.secret)
        self.heartbeats: HeartbeatClient | None = None
        if live.orchestrator_url:
            if not live.orch_secret.get_secret_value():
                raise ConfigError(
                    "ADAPTER_LIVE_RUNNER_ORCHESTRATOR_URL is set but "
                    "ADAPTER_LIVE_RUNNER_ORCH_SECRET is empty: give the orchestrator's -orchSecret"
                )
            self.heartbeats = HeartbeatClient(
                service, self.apps, door_base_url(live), PriceBook(settings, service)
            )
        self._server: uvicorn.Server | None = None
        self._ticks: asyncio.Task[None] | None = None
        self._redact = _RedactSecret(self.secret) if self.secret else None

    @classmethod
    def from_settings(cls, settings: Settings, service: RunnerService) -> LiveRunner | None:
        """The door the settings ask for, or None; ConfigError when they ask for a bad one."""
        live = settings.live_runner
        if live.enabled:
            return cls(settings, service)
        if live.orchestrator_url:
            raise ConfigError(
                "ADAPTER_LIVE_RUNNER_ORCHESTRATOR_URL is set but the door is off: set "
                "ADAPTER_LIVE_RUNNER_PORT (or ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN=true)"
            )
        return None

    def install(self, app: FastAPI) -> None:
        """Serve the door on the adapter's own port too, outside every other middleware."""
        if self.settings.serve_on_main:
            app.add_middleware(DoorOnMain, door=self.door)

    async def start(self) -> None:
        if self._redact is not None:
            logging.getLogger("uvicorn.access").addFilter(self._redact)
        if self.settings.port:
            await self._listen()
        if self.heartbeats is not None:
            await self.heartbeats.start()

    async def _listen(self) -> None:
        live = self.settings
        family = socket.AF_INET6 if ":" in live.host else socket.AF_INET
        try:
            sock = socket.create_server((live.host.strip("[]"), live.port), family=family)
        except OSError as exc:
            raise ConfigError(
                f"the Live Runner door cannot listen on ADAPTER_LIVE_RUNNER_HOST={live.host} "
                f"ADAPTER_LIVE_RUNNER_PORT={live.port}: {exc}"
            ) from exc
        # log_config=None: the adapter's logging stays as its own server configured it.
        config = uvicorn.Config(
            self.door, lifespan="off", log_config=None, timeout_graceful_shutdown=30
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[sock])
        # uvicorn's own loop only refreshes the Date header and watches should_exit.
        self._ticks = asyncio.create_task(self._server.main_loop())
        logger.info("Live Runner door on %s:%d (%d apps)", live.host, live.port, len(self.apps))

    async def close(self) -> None:
        # Leave the orchestrator first, so it stops sending work, then finish what is in flight.
        if self.heartbeats is not None:
            await self.heartbeats.close()
        if self._server is not None:
            self._server.should_exit = True
            if self._ticks is not None:
                await self._ticks
            await self._server.shutdown()
            self._server = None
        if self._redact is not None:
            logging.getLogger("uvicorn.access").removeFilter(self._redact)
