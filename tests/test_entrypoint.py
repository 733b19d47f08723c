"""`uvicorn adapter.main:app` with no configuration, as a newcomer runs it: a real process that
builds its demo model on first start and serves text-to-image."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.images import decode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("ADAPTER_") and key not in ("AUTH_TOKEN", "MODEL_DIR")
    }
    env |= {"ADAPTER_DEMO_DIR": str(tmp_path / "demo"), "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "adapter.main:app", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=2).json()["status"] == "OK":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the demo never became healthy")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_default_serves_text_to_image_offline_with_a_demo_model(demo_server, tmp_path):
    response = httpx.post(
        f"{demo_server}/text-to-image",
        json={"prompt": "a red fox", "width": 64, "height": 64, "seed": 42},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (image,) = response.json()["images"]
    assert image["seed"] == 42
    assert decode(image["url"]).size == (64, 64)
    assert (tmp_path / "demo").is_dir()
    version = httpx.get(f"{demo_server}/version").json()
    assert version["model_id"].startswith("demo/")
