"""Shared fixtures: tiny random-weight models on disk (SD, SDXL, Whisper, a chat LLM), and apps
built over them or over the fake backend. Fixtures only: helpers live in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Set before transformers/diffusers are imported: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch
from fastapi import FastAPI

from functions.tiny.image_models import (
    build_tiny_instruct_pix2pix,
    build_tiny_sd_upscaler,
    build_tiny_svd,
)
from functions.tiny.segment_anything import build_tiny_sam2
from functions.tiny.stable_diffusion import (
    build_tiny_safety_checker,
    build_tiny_sd,
    build_tiny_sdxl,
)
from functions.tiny.text_models import build_tiny_llm, build_tiny_whisper
from functions.tiny.video_models import build_tiny_wan
from tests.support.apps import make_app
from tests.support.fake_backend import FakeBackend, fake_app
from tests.support.s3_server import S3Server
from tests.support.services import unavailable

# Two cores are shared with everything else CI runs; one intra-op thread keeps runs steady.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def jobs_off_and_data_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test writes into the real home's data folder, and apps serve no jobs door unless a
    test turns it on (JobsSettings(enabled=True)): the other doors' tests stay as they were."""
    saved = {name: os.environ.get(name) for name in ("ADAPTER_DATA_DIR", "ADAPTER_JOBS_ENABLED")}
    os.environ["ADAPTER_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    os.environ["ADAPTER_JOBS_ENABLED"] = "false"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


@pytest.fixture(scope="session")
def tiny_sam2(model_root: Path) -> Path:
    return build_tiny_sam2(model_root / "tiny-sam2")


@pytest.fixture(scope="session")
def tiny_wan(model_root: Path) -> Path:
    return build_tiny_wan(model_root / "tiny-wan")


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., FastAPI]:
    def factory(entries: list[dict[str, Any]], **settings: Any) -> FastAPI:
        return make_app(tmp_path, entries, **settings)

    return factory


@pytest.fixture
def fake_app_factory(tmp_path: Path) -> Callable[..., FastAPI]:
    """Apps over the fake backend (no model loads): `factory(entries, backend=None, **settings)`."""

    def factory(
        entries: list[dict[str, Any]], backend: FakeBackend | None = None, **settings: Any
    ) -> FastAPI:
        return fake_app(tmp_path, backend, entries, **settings)

    return factory


@pytest.fixture(scope="session")
def tiny_modal_app(tiny_sd: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """modal_app.py deployed (imported) with an aiModels.json of tiny models on local disk."""
    import json

    from tests.support.modal_inprocess import import_modal_app, tiny_entries

    path = tmp_path_factory.mktemp("modal") / "aiModels.json"
    path.write_text(json.dumps(tiny_entries(tiny_sd)))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})


@pytest.fixture
def pg_url() -> Any:
    """A URL of the test PostgreSQL server whose search path is a fresh schema of this test
    alone (dropped after it); skips the test when the server cannot be reached."""
    from tests.support.jobs_store import (
        create_pg_schema,
        drop_pg_schema,
        pg_unreachable_reason,
        schema_url,
    )

    reason = pg_unreachable_reason()
    if reason is not None:
        unavailable(reason)
    schema = create_pg_schema()
    try:
        yield schema_url(schema)
    finally:
        drop_pg_schema(schema)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto's) in its own process, for the whole session."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
