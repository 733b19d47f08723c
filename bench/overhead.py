"""Case (f): the adapter's own overhead on a request whose image is ready.

The servers (bench/overhead_app.py) run under uvicorn in their own processes on this machine
and return the same JSON (one PNG data URL); requests come over real sockets from an httpx
client here, at concurrency 1 and at the model's capacity, the servers measured in
alternating blocks. The target compares the adapter with the bare route as FastAPI apps
usually answer (JSONResponse); the route answering bytes serialized once is the floor.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.overhead_app import MODEL_ID, TOKEN

REPO_ROOT = Path(__file__).resolve().parent.parent
BODY = {"model_id": MODEL_ID, "prompt": "a lighthouse at dusk", "width": 512, "height": 512}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    def __init__(self, kind: str, capacity: int, size: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "bench.overhead_app",
            kind,
            "--port",
            str(self.port),
            "--capacity",
            str(capacity),
            "--size",
            str(size),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"server on {self.port} exited: {error[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server on {self.port} did not start within {timeout_s} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


async def _block(url: str, concurrency: int, requests: int) -> list[float]:
    """Latencies of `requests` POSTs made by `concurrency` clients one after another."""
    latencies: list[float] = []
    remaining = requests
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.post("/text-to-image", json=BODY, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200 or not response.json()["images"][0]["url"]:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _stats(latencies: list[float], wall_s: float) -> dict[str, float | int]:
    ordered = sorted(latencies)
    return {
        "p50_s": statistics.median(ordered),
        "p90_s": ordered[round(0.9 * (len(ordered) - 1))],
        "requests": len(ordered),
        "requests_per_s": len(ordered) / wall_s,
    }


def run_overhead(*, capacity: int, requests: int, rounds: int, size: int) -> dict[str, Any]:
    servers = {kind: _Server(kind, capacity, size) for kind in ("bare", "bare-bytes", "adapter")}
    try:
        for server in servers.values():
            server.wait_ready()
        levels = sorted({1, capacity})
        rows: list[dict[str, Any]] = []
        for concurrency in levels:
            latencies: dict[str, list[float]] = {name: [] for name in servers}
            walls = dict.fromkeys(servers, 0.0)
            for server in servers.values():  # warm-up: connections, first-call caches
                asyncio.run(_block(server.url, concurrency, max(10, concurrency * 5)))
            for _ in range(rounds):
                for name, server in servers.items():
                    start = time.perf_counter()
                    latencies[name] += asyncio.run(_block(server.url, concurrency, requests))
                    walls[name] += time.perf_counter() - start
            stats = {name: _stats(latencies[name], walls[name]) for name in servers}
            rows.append(
                {
                    "concurrency": concurrency,
                    "paths": stats,
                    "p50_ratio": stats["adapter"]["p50_s"] / stats["bare"]["p50_s"],
                    "p50_added_s": stats["adapter"]["p50_s"] - stats["bare"]["p50_s"],
                    "p50_ratio_to_bytes_route": stats["adapter"]["p50_s"]
                    / stats["bare-bytes"]["p50_s"],
                }
            )
    finally:
        for server in servers.values():
            server.stop()
    return {
        "case": "f",
        "title": f"Adapter overhead: a ready {size}x{size} image through the adapter vs a bare "
        "FastAPI route (JSONResponse; and pre-serialized bytes, the floor), over "
        "uvicorn sockets",
        "capacity": capacity,
        "target": 1.3,
        "rows": rows,
        "p50_ratio": max(row["p50_ratio"] for row in rows),
    }
