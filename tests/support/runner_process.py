"""A runner started as a separate process (`uvicorn adapter.main:app`), as the local fallback
runs it, which tests can stop and start again on the same port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunnerProcess:
    def __init__(self, workdir: Path, entries: list[dict[str, Any]] | None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            **env,
        }
        if entries is not None:
            config = workdir / "runner-aiModels.json"
            config.write_text(json.dumps(entries))
            self.env["ADAPTER_MODELS_CONFIG"] = str(config)
        # The runner's output goes to a file: a pipe nobody reads would fill up and block it.
        self.log_path = workdir / f"runner-{self.port}.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 180.0) -> None:
        with self.log_path.open("a", encoding="utf-8") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "adapter.main:app", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log_path.read_text(encoding="utf-8")
                raise RuntimeError(f"runner exited: {output[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "OK":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("runner never became healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> RunnerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
