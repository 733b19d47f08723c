"""A workerbee dispatcher ("QueenBee") on loopback, written with `websockets` from the protocol
and from what GPUtopia's queenbee does: it takes a worker's registration as the first message
on /worker, sends it requests with the dispatcher's own defaults filled in, and records every
message the worker sends (replies, `{"busy": ...}`), each with the time it came.

It runs its own event loop on a thread, so tests drive it with plain calls; `kill` drops every
connection without a closing handshake, as a dispatcher that dies does.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.support.runner_process import free_port

# What queenbee's request models fill in (ai_spider/openai_types.py at f344108).
CHAT_DEFAULTS: dict[str, Any] = {
    "max_tokens": 200,
    "temperature": 0.8,
    "top_p": 0.95,
    "mirostat_mode": 0,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
    "stop": None,
    "stream": False,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "logit_bias": None,
    "model": None,
    "n": 1,
    "user": None,
    "top_k": 40,
    "repeat_penalty": 1.1,
    "logit_bias_type": None,
    "timeout": 120,
    "ft_timeout": 10,
    "gpu_filter": {},
}
IMAGE_DEFAULTS: dict[str, Any] = {
    "model": "stabilityai/stable-diffusion-xl-base-1.0",
    "negative_prompt": "",
    "n": 1,
    "size": "1024x1024",
    "timeout": 600,
    "gpu_filter": {},
}


@dataclass
class Received:
    at: float  # time.monotonic()
    message: Any


class Dispatcher:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}/worker"
        self.registrations: queue.Queue[Received] = queue.Queue()
        self.messages: queue.Queue[Received] = queue.Queue()
        self.busy: list[Received] = []
        self.closed: queue.Queue[int | None] = queue.Queue()
        self._connections: set[ServerConnection] = set()
        self._worker: ServerConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # --- running ---------------------------------------------------------------------------

    def start(self) -> Dispatcher:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                self._server = await serve(self._handle, "127.0.0.1", self.port, max_size=None)
                started.set()
                await self._server.wait_closed()

            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the dispatcher did not start")
        return self

    def kill(self) -> None:
        """Drop every connection at once (no close frame) and stop listening."""

        async def die() -> None:
            for connection in list(self._connections):
                connection.transport.abort()
            assert self._server is not None
            self._server.close(close_connections=False)

        self._call(die())
        assert self._thread is not None
        self._thread.join(10)

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.kill()

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the protocol ----------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        if connection.request is None or connection.request.path != "/worker":
            await connection.close(4004, "not found")
            return
        self._connections.add(connection)
        try:
            registration = json.loads(await connection.recv())
            self.registrations.put(Received(time.monotonic(), registration))
            self._worker = connection
            async for raw in connection:
                received = Received(time.monotonic(), json.loads(raw))
                if isinstance(received.message, dict) and "busy" in received.message:
                    self.busy.append(received)
                else:
                    self.messages.put(received)
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(connection)
            self.closed.put(connection.close_code)

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def send(self, openai_url: str, openai_req: dict[str, Any]) -> float:
        """Send a request to the registered worker, with the dispatcher's defaults; returns
        when it was sent."""
        defaults = CHAT_DEFAULTS if openai_url == "/v1/chat/completions" else IMAGE_DEFAULTS
        message = {"openai_url": openai_url, "openai_req": {**defaults, **openai_req}}
        assert self._worker is not None, "no worker registered"
        sent = time.monotonic()
        self._call(self._worker.send(json.dumps(message)))
        return sent

    def registration(self, timeout: float = 30) -> Received:
        return self.registrations.get(timeout=timeout)

    def reply(self, timeout: float = 60) -> Received:
        """The worker's next message other than a busy announcement."""
        return self.messages.get(timeout=timeout)

    def stream(self, timeout: float = 60) -> list[Received]:
        """A streamed reply's messages, up to and including its closing `{}`."""
        messages = [self.reply(timeout)]
        while messages[-1].message != {} and "error" not in messages[-1].message:
            messages.append(self.reply(timeout))
        return messages

    def busy_states(self, since: float = 0.0) -> list[bool]:
        return [r.message["busy"] for r in list(self.busy) if r.at >= since]

    def wait_busy(self, state: bool, since: float, timeout: float = 30) -> float:
        """When the worker announced `busy: state` (after `since`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for received in list(self.busy):
                if received.at >= since and received.message["busy"] is state:
                    return received.at
            time.sleep(0.01)
        raise AssertionError(f"no busy={state} since {since}: {self.busy_states(since)}")


def queen_would_pick(info: dict[str, Any], model_size: float) -> bool:
    """queenbee's own test of a worker for a model of `model_size` billion parameters
    (ai_spider/workers.py, get_socket_for_inference, for a "cli" worker type)."""
    gpu_needed = model_size * 1000
    disk_needed = model_size * 1000 * 1.5
    cpu_needed = model_size * 100000000 * 0.75
    nv_gpu_ram = sum(gpu.get("memory", 0) for gpu in info.get("nv_gpus", []))
    return bool(
        gpu_needed < nv_gpu_ram * 1.2
        and cpu_needed < info.get("vram", 0)
        and disk_needed < info.get("disk_space", 0)
    )


# The reference worker's fields (ai_worker/main.py ConnectMessage) and their JSON types.
FIELD_TYPES = {
    "worker_version": str,
    "capabilities": list,
    "pubkey": str,
    "slug": str,
    "sig": str,
    "ln_url": str,
    "ln_address": str,
    "auth_key": str,
    "cpu_count": int,
    "disk_space": int,
    "vram": int,
    "nv_gpu_count": (int, type(None)),
    "nv_driver_version": (str, type(None)),
    "nv_gpus": list,
    "cl_driver_version": (str, type(None)),
    "cl_gpus": list,
    "web_gpus": list,
    "models": list,
}


def meminfo_available() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable")
