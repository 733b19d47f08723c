"""Server-sent events for streamed responses (`/llm` with `stream: true`), as the runner sends them.

    data: {"id": "chatcmpl-...", ..., "choices": [{"delta": {...}, "finish_reason": ""}]}
    <blank line>
    ... one event per chunk, the last with a non-empty finish_reason ...
    data: [DONE]
    <blank line>

An error before the first chunk is an ordinary HTTP error (the response has not started); one
after it is sent as the event `data: {"error": "<message>"}` and ends the stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from contract.errors import RunnerError
from contract.schemas import RequestModel

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
DONE_EVENT = "data: [DONE]\n\n"


def wants_stream(request: RequestModel) -> bool:
    """Whether the request asks for an event stream (only LLMRequest has `stream`)."""
    return getattr(request, "stream", False) is True


def data_event(payload: str) -> str:
    return f"data: {payload}\n\n"


def error_event(msg: str) -> str:
    return data_event(json.dumps({"error": msg}))


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always closes its event generator, however the response ends.

    When the client disconnects, Starlette cancels the sending task and may leave the generator
    suspended; closing it here runs its cleanup at once (stopping generation, freeing the
    capacity slot) instead of whenever it is garbage-collected.
    """

    def __init__(self, chunks: AsyncIterator[BaseModel], first: BaseModel | None) -> None:
        super().__init__(
            _events(first, chunks),
            media_type=EVENT_STREAM,
            # No proxy may hold events back to buffer them.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The chunks too: a generator never started (the client left before the first
            # send) would not run its own cleanup.
            for iterator in (self.body_iterator, self.chunks):
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    await close()


async def event_stream(chunks: AsyncIterator[BaseModel]) -> EventStreamResponse:
    """The response streaming `chunks` as events, once the first chunk has come.

    Waiting for it lets a refusal (a bad request, an unknown model, a full queue) or an early
    failure keep its own status code, as the runner does before it starts streaming.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    return EventStreamResponse(chunks, first)


async def _events(first: BaseModel | None, chunks: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
    try:
        if first is not None:
            yield data_event(first.model_dump_json())
        async for chunk in chunks:
            yield data_event(chunk.model_dump_json())
    except RunnerError as exc:
        yield error_event(exc.msg)
        return
    except Exception:
        logger.exception("streaming failed")
        yield error_event("Internal server error during streaming.")
        return
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    yield DONE_EVENT
