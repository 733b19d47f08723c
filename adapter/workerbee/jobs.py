"""Answering one dispatcher request, `{"openai_url", "openai_req"}`, through the service.

Replies, each its own WebSocket message:
- `/v1/chat/completions`: the `chat.completion`; streamed, each `chat.completion.chunk` (the
  role first, at once, well inside the dispatcher's `ft_timeout`; the last with its
  `finish_reason` and the usage), then `{}`;
- `/v1/images/generations`: the images response (b64_json PNGs);
- an error: `{"error": <message>, "error_type": <OpenAI code or type>}`; a model with no free
  slot answers `{"error": "busy"}` at once (the dispatcher retries it elsewhere) rather than
  queueing behind the dispatcher's timeout.

The dispatcher's own fields (`timeout`, `ft_timeout`, `gpu_filter`, `mirostat_*`,
`repeat_penalty`...) are tolerated; `timeout` bounds a whole (non-streamed) answer, after which
the dispatcher has given up on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from adapter.openai.chat import complete, completion_json, openai_errors, stream_chunks
from adapter.openai.chat_request import parse_chat_request
from adapter.openai.errors import OpenAIError, invalid
from adapter.openai.images import generate_images, parse_image_request
from contract.pipelines import Pipeline

if TYPE_CHECKING:
    from adapter.service import RunnerService

logger = logging.getLogger(__name__)

CHAT_URL = "/v1/chat/completions"
IMAGES_URL = "/v1/images/generations"
BUSY: dict[str, Any] = {"error": "busy", "error_type": "busy"}
END_OF_STREAM: dict[str, Any] = {}


class JobError(Exception):
    """A job answered with an error reply; `outcome` names it for the metrics."""

    def __init__(self, reply: dict[str, Any], outcome: str) -> None:
        super().__init__(reply["error"])
        self.reply = reply
        self.outcome = outcome


def error_reply(error: OpenAIError) -> dict[str, Any]:
    if error.status_code == 429:
        return BUSY  # the model is full: the dispatcher's word for it
    return {"error": error.message, "error_type": error.code or error.type}


class JobAnswerer:
    def __init__(self, service: RunnerService, any_model: bool) -> None:
        self.service = service
        self.any_model = any_model

    def _route(self, pipeline: Pipeline, model: str) -> str:
        """The model name to ask the service for: the request's, or (with `any_model`) the
        pipeline's default in place of one not served here. Refuses at once ("busy") when
        that model has no free slot, so the job never waits in the queue."""
        served = {m.model_id for m in self.service.models if m.pipeline == pipeline}
        if model and model not in served and self.any_model:
            model = ""
        with openai_errors(model_named=bool(model)):
            limiter = self.service.limiters[self.service.resolve(pipeline, model).key]
        if not limiter.has_free_slot:
            raise JobError(BUSY, "busy")
        return model

    async def answer(self, url: Any, request: Any) -> AsyncGenerator[dict[str, Any], None]:
        """The replies to one job, in order. Raises JobError with the error reply when the job
        fails before any reply; a failure mid-stream is its last reply."""
        if not isinstance(request, dict):
            raise JobError(error_reply(invalid("openai_req must be a JSON object.")), "error")
        try:
            if url == CHAT_URL:
                async for reply in self._chat(request):
                    yield reply
            elif url == IMAGES_URL:
                yield await self._images(request)
            else:
                raise OpenAIError(
                    404, f"{url} is not served by this worker.", code="unsupported_url"
                )
        except OpenAIError as exc:
            raise JobError(error_reply(exc), "busy" if exc.status_code == 429 else "error") from exc
        except TimeoutError as exc:
            limit = request.get("timeout")
            reply = {
                "error": f"No answer within the dispatcher's timeout of {limit} s.",
                "error_type": "timeout",
            }
            raise JobError(reply, "timeout") from exc

    async def _chat(self, raw: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        request = parse_chat_request(raw)
        request.model = self._route(Pipeline.LLM, request.model)
        if not request.stream:
            async with asyncio.timeout(_timeout(raw)):
                yield completion_json(await complete(self.service, request))
            return
        # The usage rides on the finishing chunk: the dispatcher reads nothing after it.
        chunks = stream_chunks(self.service, request, role_first=True, usage_on_last=True)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()
        yield END_OF_STREAM

    async def _images(self, raw: dict[str, Any]) -> dict[str, Any]:
        request = parse_image_request(raw)
        request.model = self._route(Pipeline.TEXT_TO_IMAGE, request.model)
        async with asyncio.timeout(_timeout(raw)):
            return await generate_images(self.service, request)


def _timeout(raw: dict[str, Any]) -> float | None:
    value = raw.get("timeout")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
