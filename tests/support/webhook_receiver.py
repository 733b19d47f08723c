"""A real webhook receiver for the tests: a tiny ASGI app under uvicorn on a local port, in the
test's own event loop, that records each request and answers as the test tells it (a status,
or never)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.support.runner_process import free_port

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # None: never answered


@dataclass
class Receiver:
    """`statuses` answers the requests in turn (the last one repeats); `hang` never answers."""

    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    open_now: int = 0  # requests being handled right now
    most_open: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        status = (
            None if self.hang else self.statuses[min(len(self.requests), len(self.statuses) - 1)]
        )
        self.requests.append(Received(scope["path"], headers, body, status))
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            if status is None:  # until the sender gives up and closes the connection
                while (await receive())["type"] != "http.disconnect":
                    pass
                return
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.open_now -= 1

    async def start(self) -> None:
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for a hanging request
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
        self._server = self._task = None

    @property
    def answered_ok(self) -> list[Received]:
        return [request for request in self.requests if request.status and request.status < 300]
