"""Slow clients and shutdown, against `python -m adapter` started as a process (issue 12, items
6 and 7), over raw sockets.

- A client trickling its headers is answered 400 and closed after ADAPTER_HEADER_TIMEOUT_S; one
  that sends nothing is closed silently.
- A client trickling its body (a multipart upload at a few bytes a second) is answered 400 and
  closed after ADAPTER_BODY_TIMEOUT_S.
- On SIGTERM, a request still running after ADAPTER_SHUTDOWN_DRAIN_S is answered the
  contract's 500 and the process exits within the deadline plus a small margin.

The adapter runs its HTTP backend in front of a fake upstream runner (in this process) whose
generate route answers only when the test lets it: no model is loaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support.apps import serve
from tests.support.runner_process import ROOT, free_port

LIMIT_S = 1.5
# Scheduling slack on two shared cores: a limit is met when the close comes within this.
MARGIN_S = 1.5


class StallingUpstream:
    """A runner that is healthy and holds each text-to-image request until `release()`."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.arrived = threading.Event()  # a text-to-image request is held
        self.app = FastAPI()

        @self.app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "OK"}

        @self.app.post("/text-to-image")
        async def generate() -> dict[str, list]:
            self.arrived.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return {"images": []}

    def release(self) -> None:
        self.released.set()


@contextmanager
def stalling_upstream(held: list[StallingUpstream] | None = None) -> Iterator[str]:
    """The upstream's URL; `held`, when given, receives the upstream itself."""
    upstream = StallingUpstream()
    if held is not None:
        held.append(upstream)
    with serve(upstream.app) as url:
        try:
            yield url
        finally:
            upstream.release()  # before the server stops: it waits for what it holds


class Launched:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.address = ("127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}"
        self.log = log


LAUNCHER = ["-m", "adapter"]
# Plain uvicorn given, as its own flags, what the launcher sets from our settings.
UVICORN_WITH_FLAGS = [
    "-m",
    "uvicorn",
    "adapter.main:app",
    "--http",
    "adapter.web.timeouts:HeaderTimeoutH11Protocol",
]


@contextmanager
def launched(
    tmp_path: Path, upstream_url: str, command: list[str] = LAUNCHER, **env: str
) -> Iterator[Launched]:
    """The adapter as a process (`python -m adapter`) over the upstream, once /health says OK."""
    config = tmp_path / "aiModels.json"
    config.write_text(
        json.dumps(
            [
                {
                    "pipeline": "text-to-image",
                    "model_id": "test/stalling",
                    "warm": True,
                    "capacity": 4,
                    "runner": {"upstream_url": upstream_url},
                }
            ]
        )
    )
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    environ.pop("AUTH_TOKEN", None)
    environ |= {
        "ADAPTER_BACKEND": "http",
        "ADAPTER_MODELS_CONFIG": str(config),
        "ADAPTER_UPSTREAM_POLL_INTERVAL_S": "0.2",
        "HF_HUB_OFFLINE": "1",
        **env,
    }
    log = tmp_path / "adapter.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *command, "--port", str(port)],
            cwd=ROOT,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    launched = Launched(process, port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"adapter exited: {log.read_text()}")
            try:
                if httpx.get(f"{launched.url}/health", timeout=2).json()["status"] == "OK":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"adapter never became healthy: {log.read_text()}")
            time.sleep(0.1)
        yield launched
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    limits = {"ADAPTER_HEADER_TIMEOUT_S": str(LIMIT_S), "ADAPTER_BODY_TIMEOUT_S": str(LIMIT_S)}
    with stalling_upstream() as upstream_url:
        with launched(tmp_path_factory.mktemp("limits"), upstream_url, **limits) as process:
            yield process


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """What the server sent before closing, and when it closed (seconds from now)."""
    start = time.monotonic()
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - start


def body_of(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), raw[:200]
    assert b"connection: close" in head.lower()
    return json.loads(body)


MULTIPART_HEAD = (
    "POST /image-to-image HTTP/1.1\r\nHost: runner\r\n"
    "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
)


def test_headers_trickled_byte_by_byte_are_cut_off_after_the_limit(adapter):
    with socket.create_connection(adapter.address) as sock:
        opened = time.monotonic()
        for byte in b"POST /text-to-image HTTP/1.1\r\nHost: runner\r\nX-Slow: ":
            sock.sendall(bytes([byte]))
            time.sleep(0.02)
        sock.setblocking(True)
        try:
            while time.monotonic() - opened < LIMIT_S + MARGIN_S + 2:
                sock.sendall(b"a")
                time.sleep(0.2)
        except OSError:
            pass  # the server closed the connection: the rest of the answer is in the buffer
        raw, _ = read_until_closed(sock, 5)
        closed_after = time.monotonic() - opened
    assert body_of(raw) == {
        "detail": {"msg": "Request headers not received within ADAPTER_HEADER_TIMEOUT_S=1.5 s."}
    }
    assert closed_after < LIMIT_S + MARGIN_S + 2.5


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(adapter):
    with socket.create_connection(adapter.address) as sock:
        raw, closed_after = read_until_closed(sock, LIMIT_S + MARGIN_S + 5)
    assert raw == b""
    assert LIMIT_S - 0.1 <= closed_after < LIMIT_S + MARGIN_S


def test_a_kept_alive_connection_idle_longer_than_the_limit_still_serves(adapter):
    """The header deadline runs from the next request's first byte, not from the last answer
    (closing an idle kept-alive connection is uvicorn's own 5 s)."""
    request = b"GET /health HTTP/1.1\r\nHost: runner\r\n\r\n"
    with socket.create_connection(adapter.address, timeout=5) as sock:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(LIMIT_S + 1.0)
        sock.sendall(request)  # the same connection, still open
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    (length,) = [
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    ]
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_plain_uvicorn_given_the_protocol_class_honours_the_header_timeout(tmp_path):
    with (
        stalling_upstream() as upstream_url,
        launched(
            tmp_path, upstream_url, UVICORN_WITH_FLAGS, ADAPTER_HEADER_TIMEOUT_S=str(LIMIT_S)
        ) as adapter,
        socket.create_connection(adapter.address) as sock,
    ):
        sock.sendall(b"POST /text-to-image HTTP/1.1\r\nHost: runner\r\n")
        raw, closed_after = read_until_closed(sock, LIMIT_S + MARGIN_S + 5)
    assert "ADAPTER_HEADER_TIMEOUT_S=1.5 s" in body_of(raw)["detail"]["msg"]
    assert closed_after < LIMIT_S + MARGIN_S


def test_a_multipart_body_trickled_at_a_few_bytes_a_second_is_cut_off(adapter):
    with socket.create_connection(adapter.address) as sock:
        sock.sendall(MULTIPART_HEAD.encode())
        started = time.monotonic()
        part = b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat, '
        try:
            for byte in part * 10:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > LIMIT_S + MARGIN_S + 5:
                    break
        except OSError:
            pass
        raw, _ = read_until_closed(sock, 5)
        closed_after = time.monotonic() - started
    assert body_of(raw) == {
        "detail": {"msg": "Request body not received within ADAPTER_BODY_TIMEOUT_S=1.5 s."}
    }
    assert closed_after < LIMIT_S + MARGIN_S + 0.5


def test_two_hundred_trickling_connections_are_all_closed_after_the_limit(adapter):
    """100 trickle their headers and 100 a multipart body, one byte a second each."""
    selector = selectors.DefaultSelector()
    opened = time.monotonic()
    open_socks: dict[socket.socket, int] = {}
    for index in range(200):
        sock = socket.create_connection(adapter.address)
        sock.sendall(b"POST /image-to-image HTTP/1.1\r\n" if index % 2 else MULTIPART_HEAD.encode())
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        open_socks[sock] = index
    closed_at: list[float] = []
    next_trickle = time.monotonic()
    while open_socks and time.monotonic() - opened < LIMIT_S + 20:
        if time.monotonic() >= next_trickle:
            for sock in list(open_socks):
                try:
                    sock.send(b"x")
                except OSError:
                    pass
            next_trickle += 1.0
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                closed_at.append(time.monotonic() - opened)
                selector.unregister(sock)
                del open_socks[sock]
                sock.close()
    for sock in open_socks:
        sock.close()
    assert not open_socks, f"{len(open_socks)} connections still open"
    assert max(closed_at) < LIMIT_S + 200 * 0.005 + MARGIN_S + 1.5, max(closed_at)
    # The server still serves.
    assert httpx.get(f"{adapter.url}/health", timeout=5).status_code == 200


def test_sigterm_answers_a_request_still_running_after_the_drain_deadline(tmp_path):
    drain_s = 2.0
    held: list[StallingUpstream] = []
    with (
        stalling_upstream(held) as upstream_url,
        launched(tmp_path, upstream_url, ADAPTER_SHUTDOWN_DRAIN_S=str(drain_s)) as adapter,
    ):
        answer: dict[str, httpx.Response] = {}

        def generate() -> None:
            url = f"{adapter.url}/text-to-image"
            answer["r"] = httpx.post(url, json={"prompt": "x"}, timeout=60)

        client = threading.Thread(target=generate)
        client.start()
        assert held[0].arrived.wait(30), "the request never reached the upstream"
        signalled = time.monotonic()
        adapter.process.send_signal(signal.SIGTERM)
        adapter.process.wait(timeout=drain_s + 30)
        exited_after = time.monotonic() - signalled
        client.join(timeout=10)
    # The drain's deadline, then the exit (a hang would take the 30 s wait above).
    assert drain_s <= exited_after < drain_s + 5.0, exited_after
    response = answer["r"]
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": {"msg": "The runner shut down before the answer was ready."}
    }
