"""A real object of the Backend protocol that loads no model: for the tests of the HTTP contract
(auth, routing, limits, error bodies) that need no inference.

It answers each pipeline with a valid response of its schema, or raises what a test tells it to,
and records what it was asked, so a test can check what reached the backend.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from PIL import Image
from pydantic import BaseModel

from adapter.app import create_app
from adapter.backends.base import ModelState
from contract.aimodels import ServedModel, merge_entries, parse_entries
from contract.own_schemas import TextToVideoResponse
from contract.pipelines import Pipeline
from contract.schemas import (
    AudioResponse,
    Chunk,
    ImageResponse,
    ImageToTextResponse,
    LiveVideoToVideoResponse,
    LLMChoice,
    LLMMessage,
    LLMResponse,
    LLMTokenUsage,
    MasksResponse,
    Media,
    MediaURL,
    RequestModel,
    TextResponse,
    VideoResponse,
)
from functions.media import png_data_url


def valid_response(pipeline: Pipeline, model_id: str = "fake") -> BaseModel:
    """A response of the pipeline's schema, as a real backend would return one."""
    media = Media(url=png_data_url(Image.new("RGB", (8, 8), (200, 40, 40))), seed=42, nsfw=False)
    match pipeline:
        case Pipeline.TEXT_TO_IMAGE | Pipeline.IMAGE_TO_IMAGE | Pipeline.UPSCALE:
            return ImageResponse(images=[media])
        case Pipeline.IMAGE_TO_VIDEO:
            return VideoResponse(frames=[[media, media]])
        case Pipeline.AUDIO_TO_TEXT:
            return TextResponse(text="hello", chunks=[Chunk(timestamp=[0.0, 1.0], text="hello")])
        case Pipeline.SEGMENT_ANYTHING_2:
            return MasksResponse(masks="[[[0]]]", scores="[0.5]", logits="[[[0.0]]]")
        case Pipeline.IMAGE_TO_TEXT:
            return ImageToTextResponse(text="a picture")
        case Pipeline.TEXT_TO_SPEECH:
            return AudioResponse(audio=MediaURL(url="data:audio/wav;base64,UklGRg=="))
        case Pipeline.LLM:
            return LLMResponse(
                id="chatcmpl-fake",
                model=model_id,
                created=int(time.time()),
                usage=LLMTokenUsage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
                choices=[
                    LLMChoice(
                        index=0,
                        finish_reason="stop",
                        message=LLMMessage(role="assistant", content="hi"),
                    )
                ],
            )
        case Pipeline.LIVE_VIDEO_TO_VIDEO:
            return LiveVideoToVideoResponse(subscribe_url="http://s", publish_url="http://p")
        case Pipeline.TEXT_TO_VIDEO:
            video = Media(url="data:video/mp4;base64,AAAAIGZ0eXBpc29t", seed=42, nsfw=False)
            return TextToVideoResponse(video=video, num_frames=1, fps=16, width=16, height=16)
    raise AssertionError(pipeline)


@dataclass
class FakeBackend:
    """Backend protocol over no model. `states` and `errors` are keyed by `ServedModel.key`."""

    states: dict[str, ModelState] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    # Seconds each run takes (to hold a capacity slot in concurrency tests).
    delay_s: float = 0.0
    answer: Callable[[ServedModel, RequestModel], BaseModel] | None = None
    received: list[tuple[ServedModel, RequestModel]] = field(default_factory=list)
    started: bool = False
    closed: bool = False
    # While set to an unset Event, each run waits for it (holding its capacity slot); `running`
    # counts the runs under way.
    gate: threading.Event | None = None
    running: int = 0

    def check(self, models: list[ServedModel]) -> None:
        return None

    async def start(self) -> None:
        self.started = True

    def state(self, model: ServedModel) -> ModelState:
        return self.states.get(model.key, ModelState.READY)

    async def run(self, model: ServedModel, request: RequestModel, hooks: Any = None) -> BaseModel:
        self.received.append((model, request))
        self.running += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            while self.gate is not None and not self.gate.is_set():
                await asyncio.sleep(0.005)
        finally:
            self.running -= 1
        if model.key in self.errors:
            raise self.errors[model.key]
        if self.answer is not None:
            return self.answer(model, request)
        return valid_response(model.pipeline, model.model_id)

    async def stream(self, model: ServedModel, request: RequestModel) -> AsyncIterator[BaseModel]:
        result = await self.run(model, request)
        yield result

    async def close(self) -> None:
        self.closed = True


def fake_backend_of(app: FastAPI) -> FakeBackend:
    """The fake backend an app was built over."""
    backend = app.state.service.backend
    assert isinstance(backend, FakeBackend)
    return backend


def fake_model_id(pipeline: Pipeline) -> str:
    return f"fake/{pipeline.value}"


def fake_entries(pipelines: list[Pipeline] | None = None, **fields: Any) -> list[dict[str, Any]]:
    """One aiModels.json entry per pipeline (all of them by default), for a fake backend."""
    return [
        {
            "pipeline": pipeline.value,
            "model_id": fake_model_id(pipeline),
            "warm": True,
            "capacity": 1,
            **fields,
        }
        for pipeline in (pipelines or list(Pipeline))
    ]


def fake_app(
    tmp_path: Path,
    backend: FakeBackend | None = None,
    entries: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> FastAPI:
    """The real app over a fake backend, serving every pipeline (or `entries`)."""
    from tests.support.apps import make_settings

    models = merge_entries(parse_entries(entries or fake_entries()))
    return create_app(make_settings(tmp_path, **settings), models, backend or FakeBackend())


def _png(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def valid_request(pipeline: Pipeline) -> dict[str, Any]:
    """Keyword arguments of an httpx/TestClient `post` whose request passes every check and
    reaches the backend (small sizes, as go-livepeer would send them)."""
    from tests.support.audio import wav

    image = {"image": ("input.png", _png(), "application/octet-stream")}
    match pipeline:
        case Pipeline.TEXT_TO_IMAGE:
            return {"json": {"prompt": "a cat", "width": 64, "height": 64}}
        case Pipeline.LLM:
            return {"json": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}
        case Pipeline.TEXT_TO_SPEECH:
            return {"json": {"text": "hello"}}
        case Pipeline.LIVE_VIDEO_TO_VIDEO:
            return {"json": {"subscribe_url": "http://s", "publish_url": "http://p"}}
        case Pipeline.TEXT_TO_VIDEO:
            return {"json": {"prompt": "a cat", "width": 32, "height": 32, "num_frames": 1}}
        case Pipeline.IMAGE_TO_IMAGE | Pipeline.UPSCALE:
            return {"files": image, "data": {"prompt": "a cat"}}
        case Pipeline.IMAGE_TO_VIDEO:
            return {"files": image, "data": {"height": "64", "width": "64"}}
        case Pipeline.AUDIO_TO_TEXT:
            return {"files": {"audio": ("audio.wav", wav(0.5), "application/octet-stream")}}
        case Pipeline.SEGMENT_ANYTHING_2:
            return {"files": image, "data": {"point_coords": "[[4, 4]]", "point_labels": "[1]"}}
        case Pipeline.IMAGE_TO_TEXT:
            return {"files": image}
    raise AssertionError(pipeline)
