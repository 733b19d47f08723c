"""Shared fixtures: tiny random-weight models on disk (SD, SDXL, Whisper, a chat LLM), and apps
built over them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Set before transformers/diffusers are imported: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.settings import Limits, Settings
from contract.aimodels import merge_entries, parse_entries
from functions.tiny.image_models import (
    build_tiny_instruct_pix2pix,
    build_tiny_sd_upscaler,
    build_tiny_svd,
)
from functions.tiny.stable_diffusion import (
    build_tiny_safety_checker,
    build_tiny_sd,
    build_tiny_sdxl,
)
from functions.tiny.text_models import build_tiny_llm, build_tiny_whisper

# Two cores are shared with everything else CI runs; one intra-op thread keeps runs steady.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_sd(model_root: Path) -> Path:
    return build_tiny_sd(model_root / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl(model_root: Path) -> Path:
    return build_tiny_sdxl(model_root / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_pix2pix(model_root: Path) -> Path:
    return build_tiny_instruct_pix2pix(model_root / "tiny-instruct-pix2pix")


@pytest.fixture(scope="session")
def tiny_svd(model_root: Path) -> Path:
    return build_tiny_svd(model_root / "tiny-svd")


@pytest.fixture(scope="session")
def tiny_upscaler(model_root: Path) -> Path:
    return build_tiny_sd_upscaler(model_root / "tiny-sd-x4-upscaler")


@pytest.fixture(scope="session")
def flagging_checker(model_root: Path) -> Path:
    return build_tiny_safety_checker(model_root / "checker-flags-all", threshold=-100.0)


@pytest.fixture(scope="session")
def passing_checker(model_root: Path) -> Path:
    return build_tiny_safety_checker(model_root / "checker-flags-none", threshold=100.0)


@pytest.fixture(scope="session")
def tiny_whisper(model_root: Path) -> Path:
    return build_tiny_whisper(model_root / "tiny-whisper")


@pytest.fixture(scope="session")
def tiny_llm(model_root: Path) -> Path:
    return build_tiny_llm(model_root / "tiny-llm")


def model_entry(pipeline: str, path: Path, model_id: str, **fields: Any) -> dict[str, Any]:
    """An aiModels.json entry serving the model saved at `path` (warm, capacity 1)."""
    runner = {"model_path": str(path), **fields.pop("runner", {})}
    return {"pipeline": pipeline, "model_id": model_id, "warm": True, "capacity": 1,
            "runner": runner, **fields}


def sd_entry(path: Path, model_id: str = "test/tiny-sd", **fields: Any) -> dict[str, Any]:
    return model_entry("text-to-image", path, model_id, **fields)


def whisper_entry(path: Path, model_id: str = "test/tiny-whisper", **fields: Any) -> dict:
    return model_entry("audio-to-text", path, model_id, **fields)


def llm_entry(path: Path, model_id: str = "test/tiny-llm", **fields: Any) -> dict:
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
    return create_app(make_settings(tmp_path, **settings), merge_entries(parse_entries(entries)))


def wait_until_settled(client: Any, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get("/health").json()["status"]
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


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., FastAPI]:
    def factory(entries: list[dict[str, Any]], **settings: Any) -> FastAPI:
        return make_app(tmp_path, entries, **settings)

    return factory


@pytest.fixture(scope="session")
def tiny_modal_app(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """modal_app.py deployed (imported) with an aiModels.json of tiny models on local disk."""
    import json

    from tests.support.modal_inprocess import import_modal_app, tiny_entries

    path = tmp_path_factory.mktemp("modal") / "aiModels.json"
    path.write_text(json.dumps(tiny_entries(tiny_sd)))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})
