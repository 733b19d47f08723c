"""Apps for tests: aiModels.json entries, settings, the app over the local backend (the one over
the fake backend is `tests.support.fake_backend.fake_app`), a TestClient that waits for warm
models, and a real uvicorn server in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.settings import Limits, Settings
from contract.aimodels import merge_entries, parse_entries


def entry(pipeline: str, model_id: str, **fields: Any) -> dict[str, Any]:
    """An aiModels.json entry (warm, capacity 1) with no model on disk: for the fake backend."""
    return {"pipeline": pipeline, "model_id": model_id, "warm": True, "capacity": 1, **fields}


def model_entry(pipeline: str, path: Path, model_id: str, **fields: Any) -> dict[str, Any]:
    """An aiModels.json entry serving the model saved at `path` (warm, capacity 1)."""
    runner = {"model_path": str(path), **fields.pop("runner", {})}
    return entry(pipeline, model_id, runner=runner, **fields)


def sd_entry(path: Path, model_id: str = "test/tiny-sd", **fields: Any) -> dict[str, Any]:
    return model_entry("text-to-image", path, model_id, **fields)


def whisper_entry(path: Path, model_id: str = "test/tiny-whisper", **fields: Any) -> dict[str, Any]:
    return model_entry("audio-to-text", path, model_id, **fields)


def llm_entry(path: Path, model_id: str = "test/tiny-llm", **fields: Any) -> dict[str, Any]:
    return model_entry("llm", path, model_id, **fields)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    limits = overrides.pop("limits", {})
    return Settings(
        models_config=None,
        auth_token=overrides.pop("auth_token", ""),
        model_dir=overrides.pop("model_dir", tmp_path / "hf-cache"),
        demo_dir=tmp_path / "demo",
        device="cpu",
        limits=Limits(**limits),
        **overrides,
    )


def make_app(tmp_path: Path, entries: list[dict[str, Any]], **settings: Any) -> FastAPI:
    """The app over the backend the settings name (the local one unless told otherwise)."""
    return create_app(make_settings(tmp_path, **settings), merge_entries(parse_entries(entries)))


def wait_until_settled(client: Any, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status: str = client.get("/health").json()["status"]
        if status != "LOADING":
            return status
        time.sleep(0.05)
    raise AssertionError("models still LOADING after the timeout")


@contextmanager
def running_client(app: FastAPI, **client_options: Any) -> Iterator[TestClient]:
    """A TestClient with lifespan run and every warm model loaded."""
    with TestClient(app, **client_options) as client:
        wait_until_settled(client)
        yield client


@contextmanager
def serve(app: FastAPI, settle: bool = True) -> Iterator[str]:
    """Run the app on a real uvicorn server in a thread; yields its base URL once every warm
    model has loaded (or at once, with settle=False)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        if settle:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                wait_until_settled(client)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
