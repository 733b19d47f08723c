"""A real S3-compatible server for the tests: moto's server, started as a separate process on a
free port, reached over HTTP by boto3 as any S3 endpoint is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.runner_process import free_port

# moto accepts any credentials; these only keep boto3 from looking for real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"s3-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env |= CREDENTIALS
        with self.log_path.open("ab") as log:  # a file: a pipe nobody reads would block it
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log_path.read_text()[-4000:]}")
            try:
                # moto's own endpoint; any answer means it listens.
                httpx.get(f"{self.endpoint_url}/moto-api/", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto's S3 server never answered")

    def reset(self) -> None:
        """Forget every bucket and object (between tests)."""
        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
