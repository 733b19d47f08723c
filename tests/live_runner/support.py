"""What the Live Runner tests run against: the adapter as a real process, a reverse proxy that
behaves as go-livepeer's `/apps/{runner}/app/{path}` does, and an orchestrator that speaks the
heartbeat protocol (LIVE-RUNNER.md §6, §10.3)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.types import Message, Receive, Scope, Send

from adapter.live_runner.__main__ import main
from adapter.live_runner.registration import document_problems
from tests.support.runner_process import ROOT, free_port

# --- the adapter as a process --------------------------------------------------------------


class AdapterProcess:
    """`uvicorn adapter.main:app` with the Live Runner door on its own port."""

    def __init__(self, workdir: Path, entries: list[dict[str, Any]] | None, **env: str) -> None:
        self.port = free_port()
        self.door_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.door_url = f"http://127.0.0.1:{self.door_port}"
        self.log_path = workdir / f"adapter-{self.port}.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ADAPTER_") and key not in ("AUTH_TOKEN", "MODEL_DIR")
        }
        self.env |= {
            "ADAPTER_DEMO_DIR": str(workdir / "demo"),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "ADAPTER_DEVICE": "cpu",
            "ADAPTER_LIVE_RUNNER_PORT": str(self.door_port),
            **env,
        }
        if entries is not None:
            config = workdir / f"aiModels-{self.port}.json"
            config.write_text(json.dumps(entries))
            self.env["ADAPTER_MODELS_CONFIG"] = str(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        """Start it; returns once the door answers (models may still be loading)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "adapter.main:app", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"adapter exited: {self.log()}")
            try:
                httpx.get(f"{self.door_url}/", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the door never answered: {self.log()}")

    def wait_healthy(self, health_url: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if httpx.get(health_url, timeout=3).status_code == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"{health_url} never healthy: {self.log()}")

    def registration(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "adapter.live_runner", "registration", *args],
            cwd=ROOT,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code, self.process = self.process.returncode, None
        return code

    def __enter__(self) -> AdapterProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- go-livepeer's single-shot proxy -------------------------------------------------------

# Hop-by-hop headers (RFC 9110 §7.6.1), which Go's ReverseProxy strips, and the forwarding
# headers go-livepeer strips without adding its own (LIVE-RUNNER.md §10.3.3).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
}
STRIPPED = {
    "host",
    "content-length",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
}


@dataclass
class Runner:
    entry: dict[str, Any]
    healthy: bool = False
    in_flight: int = 0
    health_codes: list[int] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return self.entry.get("capacity") or 1


class LivepeerProxy:
    """ASGI app: `ANY /apps/{label}/app/{path}` as go-livepeer's ProxyLiveRunnerSingleShot does it.

    One session per request (503 `no capacity available for runner` beyond capacity), health
    polled every `poll_s` with a 3 s timeout (404 `runner not found` while unhealthy), the app
    path joined onto runner_url's path, method, query, headers and body passed on (the body
    streamed), the Livepeer-* headers set, the response's status, headers and body streamed back.
    """

    def __init__(self, document: dict[str, Any], poll_s: float = 0.5) -> None:
        self.runners = {entry["label"]: Runner(entry) for entry in document["runners"]}
        self.poll_s = poll_s
        self.sessions = 0
        self._client: httpx.AsyncClient | None = None
        self._poller: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=3.0, follow_redirects=True) as client:
            while True:
                for runner in self.runners.values():
                    try:
                        code = (await client.get(runner.entry["health_url"])).status_code
                    except httpx.HTTPError:
                        code = 0
                    runner.health_codes.append(code)
                    runner.healthy = code == runner.entry.get("healthy_status_code", 200)
                await asyncio.sleep(self.poll_s)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=30.0))
                self._poller = asyncio.create_task(self._poll())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._poller is not None:
                    self._poller.cancel()
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        parts = scope["path"].split("/", 4)  # "", "apps", label, "app", rest
        if len(parts) < 4 or parts[1] != "apps" or parts[3] != "app":
            await _plain(send, 404, "404 page not found")
            return
        if len(parts) == 4:  # the bare discovery URL: ServeMux redirects before any handler
            await _plain(send, 301, "", [(b"location", f"{scope['path']}/".encode())])
            return
        runner = self.runners.get(parts[2])
        if runner is None or not runner.healthy:
            await _plain(send, 404, "runner not found")
            return
        if runner.in_flight >= runner.capacity:
            await _plain(send, 503, "no capacity available for runner")
            return
        runner.in_flight += 1
        self.sessions += 1
        try:
            await self._forward(runner, parts[4], scope, receive, send)
        finally:
            runner.in_flight -= 1

    async def _forward(
        self, runner: Runner, app_path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        assert self._client is not None
        target = urlsplit(runner.entry["runner_url"])
        # url.JoinPath("/", target.Path, appPath): runner_url's trailing "/" is dropped, the
        # app path's is kept.
        path = "/" + "/".join(p for p in (target.path.strip("/"), app_path) if p)
        url = f"{target.scheme}://{target.netloc}{path}"
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k.decode().lower() not in HOP_BY_HOP | STRIPPED
        ]
        session = f"session-{self.sessions}"
        headers += [
            ("Livepeer-Runner-Route", runner.entry["label"]),
            ("Livepeer-Session-Id", session),
            ("Livepeer-Session-Token", f"token-{session}"),
            ("Livepeer-Session-Control", "http://orchestrator.test:8935"),
        ]

        async def body() -> AsyncIterator[bytes]:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    return
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body"):
                    return

        request = self._client.build_request(scope["method"], url, headers=headers, content=body())
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _plain(send, 502, str(exc))
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in response.headers.multi_items()
                        if k.lower() not in HOP_BY_HOP | {"content-length"}
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """As Go's http.Error writes it: text/plain."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": (text + "\n").encode() if text else b""})


# --- an orchestrator for dynamic registration ----------------------------------------------


@dataclass
class Call:
    at: float
    path: str
    authorization: str
    body: dict[str, Any]


class TestOrchestrator:
    """ASGI app: POST /runners/heartbeat and /runners/{id}/unregister as ai/runner/live_runner.go
    answers them: 401 on a wrong secret, a runner_id and heartbeat_secret on registration, 404
    for a runner it no longer knows (`forget`)."""

    __test__ = False

    def __init__(self, orch_secret: str, interval: str = "300ms") -> None:
        self.orch_secret = orch_secret
        self.interval = interval
        self.calls: list[Call] = []
        self.runners: dict[str, str] = {}  # runner_id -> heartbeat_secret
        self.removed: set[str] = set()  # removed or expired, not yet swept: 404
        self.url = ""
        self._next = 0
        self._lock = threading.Lock()

    def forget(self, runner_id: str) -> None:
        with self._lock:
            self.runners.pop(runner_id, None)
            self.removed.add(runner_id)

    def of(self, app: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.body.get("app") == app]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else {}
        call = Call(time.monotonic(), scope["path"], headers.get("authorization", ""), body)
        with self._lock:
            self.calls.append(call)
            status, answer = self._answer(call)
        payload = json.dumps(answer).encode() if answer is not None else b""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _answer(self, call: Call) -> tuple[int, dict[str, Any] | None]:
        if call.path.startswith("/runners/") and call.path.endswith("/unregister"):
            runner_id = call.path.split("/")[2]
            if self.runners.get(runner_id) != call.authorization:
                return 404, {"error": "runner not found"}
            del self.runners[runner_id]
            return 204, None
        if call.path != "/runners/heartbeat":
            return 404, {"error": "not found"}
        runner_id = call.body.get("runner_id", "")
        if runner_id in self.runners:
            if call.authorization != self.runners[runner_id]:
                return 401, {"error": "invalid heartbeat authorization"}
            return 200, self._reply(runner_id, first=False)
        if runner_id in self.removed:
            return 404, {"error": "runner not found"}
        if call.authorization != self.orch_secret:
            return 401, {"error": "invalid registration authorization"}
        self._next += 1
        runner_id = f"runner_{self._next}"
        self.runners[runner_id] = f"hb-secret-{self._next}"
        return 200, self._reply(runner_id, first=True)

    def _reply(self, runner_id: str, first: bool) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "runner_id": runner_id,
            "orchestrator": self.url,
            "heartbeat_interval": self.interval,
            "heartbeat_ttl": "2s",
            "session_ids": [],
        }
        if first:
            reply["heartbeat_secret"] = self.runners[runner_id]
        return reply


# --- the registration document ---------------------------------------------------------


def assert_valid(document: dict, secrets: tuple[str, ...] = ()) -> None:
    """go-livepeer's validation of a static batch, written out independently."""
    runners = document["runners"]
    labels = [entry["label"] for entry in runners]
    assert all(label and label == label.strip() and "/" not in label for label in labels)
    assert len(set(labels)) == len(labels)
    for entry in runners:
        for url_field in ("runner_url", "health_url"):
            parts = urlsplit(entry[url_field])
            assert parts.scheme in ("http", "https") and parts.hostname, entry[url_field]
        # Absolute, and served under the app's own prefix.
        assert entry["health_url"] == entry["runner_url"] + "/health"
        assert entry["healthy_status_code"] == 200
        assert entry["app"] and entry["app"] == entry["app"].strip()
        assert entry["mode"] == "single-shot"
        assert isinstance(entry["capacity"], int) and entry["capacity"] >= 1
        assert len(entry["metadata"].encode()) <= 1024
        assert json.loads(entry["metadata"])["route"] == "/" + entry["app"].split("/")[0]
        info = entry["price_info"]
        assert isinstance(info["price"], int | float) and info["price"] > 0
        assert info["currency"] == "usd" and info["unit"] in ("fixed", "hour")
        public = json.dumps({k: v for k, v in entry.items() if not k.endswith("_url")})
        assert not any(secret in public for secret in secrets)
    assert document_problems(document, list(secrets)) == []


def run(monkeypatch, capsys, *args: str, **env: str) -> tuple[int, str, str]:
    for key in [k for k in os.environ if k.startswith("ADAPTER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(["registration", *args])
    out, err = capsys.readouterr()
    return code, out, err
