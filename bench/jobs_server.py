"""The adapter the jobs load test drives: `python -m adapter` in its own process, serving the
built-in demo models on the CPU, with its jobs on SQLite in a fresh data folder or in a fresh
schema of a PostgreSQL database (created here, dropped after)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# Variables of the caller's shell that would change what the adapter serves or how.
_DROPPED = ("AUTH_TOKEN", "MODEL_DIR", "VERSION")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def create_pg_schema(url: str) -> str:
    """A fresh schema of the database at `url` (parallel runs never share one); its name."""
    import psycopg

    name = f"jobs_bench_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name


def drop_pg_schema(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def schema_url(url: str, schema: str) -> str:
    """`url` with `schema` first on the search path (libpq's `options` parameter), so every
    connection of the adapter's pool uses it."""
    options = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={options}"


class AdapterProcess:
    """`python -m adapter` on a free loopback port; its output goes to a log file (a pipe that
    nobody reads would fill up and block it)."""

    def __init__(self, env: dict[str, str], log_path: Path, threads: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ADAPTER_") and key not in _DROPPED
        }
        self.env = base | {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"} | env
        if threads is not None:
            self.env["OMP_NUM_THREADS"] = str(threads)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float) -> float:
        """Start it and wait for `/health` to say OK (the demo built and loaded); seconds taken."""
        started = time.perf_counter()
        command = [sys.executable, "-m", "adapter", "--port", str(self.port)]
        command += ["--log-level", "warning"]  # no access log line per request
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the adapter exited at start:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).json().get("status") == "OK":
                    return time.perf_counter() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"no healthy adapter within {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def warnings(self, most: int = 50) -> list[str]:
        """The first `most` lines the adapter logged at WARNING or above, and tracebacks'
        first lines (it logs a line per request at INFO, which are left out)."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback ")
        return [line for line in lines if any(mark in line for mark in marks)][:most]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
