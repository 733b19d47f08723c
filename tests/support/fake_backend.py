"""A real object of the Backend protocol that loads no model: for the tests of the HTTP contract
(auth, routing, limits, error bodies) that need no inference.

It answers each pipeline with a valid response of its schema, or raises what a test tells it to,
and records what it was asked, so a test can check what reached the backend.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from PIL import Image
from pydantic import BaseModel

from adapter.backends.base import ModelState
from contract.aimodels import ServedModel
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


def png_data_url(width: int = 8, height: int = 8) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def valid_response(pipeline: Pipeline, model_id: str = "fake") -> BaseModel:
    """A response of the pipeline's schema, as a real backend would return one."""
    media = Media(url=png_data_url(), seed=42, nsfw=False)
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

    def check(self, models: list[ServedModel]) -> None:
        return None

    async def start(self) -> None:
        self.started = True

    def state(self, model: ServedModel) -> ModelState:
        return self.states.get(model.key, ModelState.READY)

    async def run(self, model: ServedModel, request: RequestModel) -> BaseModel:
        self.received.append((model, request))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
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
