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

from adapter.limits import the_limit
from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from contract.errors import LimitExceededError
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


@dataclass
class LoadedLLM:
    chat: ChatModel
    model_id: str
    max_prompt_tokens: int
    # How the limit reads in a refusal (its environment variable and value).
    prompt_limit: str


def _sampling(request: LLMRequest) -> Sampling:
    from functions.llm import Sampling

    return Sampling(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
    )


def _messages(request: LLMRequest) -> list[dict[str, str]]:
    return [message.model_dump() for message in request.messages]


def _usage(prompt_tokens: int, completion_tokens: int) -> LLMTokenUsage:
    return LLMTokenUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class LLMRunner(PipelineRunner):
    pipeline = Pipeline.LLM

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.llm import check_inputs

        assert isinstance(request, LLMRequest)
        check_inputs(messages=_messages(request), sampling=_sampling(request))
        return Prepared(request)

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
            prompt_limit=the_limit("max_llm_prompt_tokens", settings.limits),
        )

    def _prompt_ids(self, handle: LoadedLLM, request: LLMRequest) -> list[int]:
        ids = handle.chat.prompt_ids(_messages(request))
        if len(ids) > handle.max_prompt_tokens:
            raise LimitExceededError(
                f"The prompt is {len(ids)} tokens, over the limit {handle.prompt_limit}."
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
