"""LLM glue: LLMRequest -> functions.llm -> LLMResponse, whole or as a stream of deltas."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, StopCheck
from contract.errors import BadRequestError, LimitExceededError
from contract.pipelines import Pipeline
from contract.schemas import (
    LLMChoice,
    LLMMessage,
    LLMRequest,
    LLMResponse,
    LLMTokenUsage,
    RequestModel,
)

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.llm import ChatModel, Sampling

ROLES = ("system", "user", "assistant")


@dataclass
class LoadedLLM:
    chat: ChatModel
    model_id: str
    max_prompt_tokens: int


def check_llm_request(request: LLMRequest, limits: Limits) -> None:
    """The runner's checks on messages and sampling, as 400s, plus our cost limit."""
    if not request.messages:
        raise BadRequestError("messages must not be empty.")
    for index, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise BadRequestError(
                f"messages[{index}].role must be one of {', '.join(ROLES)}, got {message.role!r}."
            )
    if not 0 <= request.temperature <= 2:
        raise BadRequestError(f"temperature must be between 0 and 2, got {request.temperature}.")
    if not 0 <= request.top_p <= 1:
        raise BadRequestError(f"top_p must be between 0 and 1, got {request.top_p}.")
    if request.top_k < -1:
        raise BadRequestError(f"top_k must be -1 (off) or positive, got {request.top_k}.")
    if request.max_tokens < 1:
        raise BadRequestError(f"max_tokens must be at least 1, got {request.max_tokens}.")
    if request.max_tokens > limits.max_llm_tokens:
        raise LimitExceededError(
            f"max_tokens={request.max_tokens} is over the limit "
            f"max_llm_tokens={limits.max_llm_tokens}."
        )


def _sampling(request: LLMRequest) -> Sampling:
    from functions.llm import Sampling

    return Sampling(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> LLMTokenUsage:
    return LLMTokenUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class LLMRunner(PipelineRunner):
    pipeline = Pipeline.LLM

    async def prepare(self, request: RequestModel, limits: Limits) -> RequestModel:
        assert isinstance(request, LLMRequest)
        check_llm_request(request, limits)
        return await super().prepare(request, limits)

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.text_models import build_tiny_llm

        build_tiny_llm(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.llm import ChatModel

        return LoadedLLM(
            chat=ChatModel.load(folder, device=device, dtype=dtype),
            model_id=model.model_id,
            max_prompt_tokens=settings.limits.max_llm_prompt_tokens,
        )

    def _prompt_ids(self, handle: LoadedLLM, request: LLMRequest) -> list[int]:
        ids = handle.chat.prompt_ids([message.model_dump() for message in request.messages])
        if len(ids) > handle.max_prompt_tokens:
            raise LimitExceededError(
                f"The prompt is {len(ids)} tokens, over the limit "
                f"max_llm_prompt_tokens={handle.max_prompt_tokens}."
            )
        return ids

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        assert isinstance(handle, LoadedLLM) and isinstance(request, LLMRequest)
        prompt = self._prompt_ids(handle, request)
        completion = handle.chat.complete(prompt, _sampling(request), should_stop)
        return LLMResponse(
            id=f"chatcmpl-{uuid.uuid4()}",
            model=handle.model_id,
            created=int(time.time()),
            usage=_usage(completion.prompt_tokens, completion.completion_tokens),
            choices=[
                LLMChoice(
                    index=0,
                    finish_reason=completion.finish_reason,
                    message=LLMMessage(role="assistant", content=completion.text),
                )
            ],
        )

    def stream(
        self, handle: Any, request: RequestModel, should_stop: StopCheck
    ) -> Iterator[BaseModel]:
        assert isinstance(handle, LoadedLLM) and isinstance(request, LLMRequest)
        prompt = self._prompt_ids(handle, request)
        response_id = f"chatcmpl-{uuid.uuid4()}"
        # Closed with this generator, so a client that leaves stops the generation at once.
        with closing(handle.chat.stream(prompt, _sampling(request), should_stop)) as deltas:
            for delta in deltas:
                yield LLMResponse(
                    id=response_id,
                    model=handle.model_id,
                    created=int(time.time()),
                    usage=_usage(delta.prompt_tokens, delta.completion_tokens),
                    choices=[
                        LLMChoice(
                            index=0,
                            finish_reason=delta.finish_reason,
                            delta=LLMMessage(role="assistant", content=delta.text),
                        )
                    ],
                )
