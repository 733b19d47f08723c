"""Chat completions through the runner service: whole, or as `chat.completion.chunk`s.

Transport-free: the HTTP door (`adapter.openai.routes`) and the workerbee worker both call
`complete` and `stream_chunks`, which return OpenAI's JSON objects as dicts. Routing, capacity,
limits and metrics are the service's (`RunnerService.handle` / `stream`).

Stop sequences are applied here, on the text: a stream is cut (and its generation stopped, by
closing the service's stream) at the first one; the text held back while it may be the start of
one is sent once it cannot be.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adapter.openai.chat_request import ChatCompletionRequest, to_llm_request
from adapter.openai.errors import from_runner_error
from contract.errors import RunnerError
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import LLMResponse, LLMTokenUsage

if TYPE_CHECKING:
    from adapter.service import RunnerService

LLM_SPEC = PIPELINE_SPECS[Pipeline.LLM]


@contextmanager
def openai_errors(model_named: bool) -> Iterator[None]:
    """Runner errors raised inside, as OpenAI's (`adapter.openai.errors`)."""
    try:
        yield
    except RunnerError as exc:
        raise from_runner_error(exc, model_named) from exc


class StopScanner:
    """Cuts streamed text at the first stop sequence, holding back a tail that may begin one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """The text that can be sent now, and whether a stop sequence was reached."""
        buffer = self.held + text
        hits = [index for stop in self.stops if (index := buffer.find(stop)) >= 0]
        if hits:
            self.held = ""
            return buffer[: min(hits)], True
        keep = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), keep, -1):
                if buffer.endswith(stop[:size]):
                    keep = size
                    break
        self.held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


@dataclass
class Completion:
    """One answer as the door reports it: ids, text, why it ended and what it cost."""

    id: str
    model: str
    created: int
    text: str
    finish_reason: str
    usage: LLMTokenUsage


def usage_json(usage: LLMTokenUsage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_json(completion: Completion) -> dict[str, Any]:
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text, "refusal": None},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_json(completion.usage),
    }


def _chunk(
    ids: tuple[str, str, int],
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage: LLMTokenUsage | None = None,
) -> dict[str, Any]:
    chunk_id, model, created = ids
    chunk: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage_json(usage)
    return chunk


def _text_and_finish(response: LLMResponse) -> tuple[str, str]:
    choice = response.choices[0] if response.choices else None
    if choice is None:
        return "", ""
    message = choice.delta or choice.message
    return (message.content if message is not None else ""), choice.finish_reason


async def complete(service: RunnerService, request: ChatCompletionRequest) -> Completion:
    """The whole answer. With stop sequences it is generated as a stream, so generation stops
    at the first one instead of running on to max_tokens."""
    model_named = bool(request.model)
    if request.stops:
        pieces: list[str] = []
        finish, usage = "stop", None
        ids: tuple[str, str, int] = ("", "", 0)
        async for chunk in stream_chunks(service, request, usage_on_last=True):
            ids = (chunk["id"], chunk["model"], chunk["created"])
            for choice in chunk["choices"]:
                pieces.append(choice["delta"].get("content") or "")
                finish = choice["finish_reason"] or finish
            if "usage" in chunk:
                usage = LLMTokenUsage(**chunk["usage"])
        assert usage is not None
        return Completion(ids[0], ids[1], ids[2], "".join(pieces), finish, usage)
    with openai_errors(model_named):
        response = await service.handle(LLM_SPEC, to_llm_request(request, stream=False))
    assert isinstance(response, LLMResponse)
    text, finish = _text_and_finish(response)
    return Completion(
        id=response.id,
        model=response.model,
        created=response.created,
        text=text,
        finish_reason=finish or "stop",
        usage=response.usage,
    )


async def stream_chunks(
    service: RunnerService,
    request: ChatCompletionRequest,
    *,
    role_first: bool = False,
    usage_on_last: bool = False,
) -> AsyncGenerator[dict[str, Any], None]:
    """The answer as OpenAI's chunks: the role, the text as it comes, the finish reason, then
    (with `stream_options.include_usage`) a chunk of usage with no choices.

    Nothing is yielded before the service has admitted the request and sent its first piece,
    so a refusal raises before the caller has started an answer; unless `role_first`, which
    yields the role chunk at once (the workerbee dispatcher wants a first chunk within its
    `ft_timeout`, however long the model takes to its first token). `usage_on_last` puts the
    usage on the finishing chunk instead (the dispatcher reads no chunk after that one).
    """
    model_named = bool(request.model)
    with openai_errors(model_named):
        model = service.resolve(Pipeline.LLM, request.model)
        llm_request = to_llm_request(request, stream=True)
    ids = (f"chatcmpl-{uuid.uuid4().hex}", model.model_id, int(time.time()))
    role = _chunk(ids, {"role": "assistant", "content": ""})
    if role_first:
        yield role
    stops = StopScanner(request.stops)
    chunks = service.stream(LLM_SPEC, llm_request)
    usage = LLMTokenUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    finish = ""
    try:
        with openai_errors(model_named):
            first = True
            async for response in chunks:
                assert isinstance(response, LLMResponse)
                if first and not role_first:
                    yield role
                first = False
                usage = response.usage
                text, finish = _text_and_finish(response)
                sendable, stopped = stops.feed(text)
                if stopped:
                    finish = "stop"
                if finish:
                    # The held-back tail is text too once the answer has ended.
                    sendable += "" if stopped else stops.flush()
                if sendable:
                    yield _chunk(ids, {"content": sendable})
                if finish:
                    break
    finally:
        # Ends the generation at once (and frees the slot) when a stop sequence cut it short.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    last_usage = usage if usage_on_last else None
    yield _chunk(ids, {}, finish or "stop", last_usage)
    if request.include_usage and not usage_on_last:
        chunk = _chunk(ids, {}, usage=usage)
        chunk["choices"] = []
        yield chunk
