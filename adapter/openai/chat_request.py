"""An OpenAI chat completion request, checked and translated into the runner's `LLMRequest`.

What the runner's LLM can do is honoured; what it cannot is refused with a 400 naming the
parameter (tools, n > 1, logprobs, penalties...), never silently dropped. Fields of other
dialects that only tune a sampler we do not have (`repeat_penalty`, `mirostat_*`, the workerbee
dispatcher's `timeout`, `ft_timeout`, `gpu_filter`) are tolerated and ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from adapter.openai.errors import from_validation_error, invalid
from contract.schemas import LLMMessage, LLMRequest

# OpenAI's defaults where the request leaves a sampling field out (the runner's /llm has its
# own, lower temperature).
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
MAX_STOP_SEQUENCES = 4
# OpenAI's `developer` role is its newer name for `system`.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[Any] | None = None


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's request this service reads; every other field is ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    # Not OpenAI's, but llama.cpp's and the workerbee dispatcher's (it sends 40): a sampler the
    # runner has, so it is honoured.
    top_k: int | None = None
    stop: str | list[str] | None = None
    # Accepted, as OpenAI's own is best effort: the runner's LLM takes no seed, so answers
    # repeat only at temperature 0.
    seed: int | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """The request, or a 400 naming the field that does not parse."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    check_supported(request)
    return request


def check_supported(request: ChatCompletionRequest) -> None:
    """Refuse, naming the parameter, what the runner's LLM cannot honour."""
    if request.n is not None and request.n != 1:
        raise invalid(
            f"n={request.n} is not supported: this service returns one choice per request "
            "(send n=1, or several requests).",
            "n",
        )
    if request.tools or request.functions:
        raise invalid("Tool and function calling are not supported by this service.", "tools")
    if request.tool_choice not in (None, "none"):
        raise invalid("Tool calling is not supported by this service.", "tool_choice")
    kind = (request.response_format or {}).get("type", "text")
    if kind != "text":
        raise invalid(
            f"response_format type {kind!r} is not supported; only 'text' is.", "response_format"
        )
    if request.logprobs or request.top_logprobs:
        raise invalid("logprobs are not supported by this service.", "logprobs")
    if request.logit_bias:
        raise invalid("logit_bias is not supported by this service.", "logit_bias")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(request, name):
            raise invalid(f"{name} is not supported by this service; send 0 or leave it out.", name)
    stops = request.stops
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid(f"stop takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")
    if not request.messages:
        raise invalid("messages must not be empty.", "messages")


def message_text(message: ChatMessage, index: int) -> str:
    """The message's text: a string, or its text parts joined; other parts are refused."""
    param = f"messages[{index}].content"
    if message.tool_calls:
        raise invalid("Tool calls are not supported by this service.", f"messages[{index}]")
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise invalid(
                f"Only text content parts are supported, got {part.get('type')!r}.", param
            )
        texts.append(part["text"])
    return "\n".join(texts)


def to_llm_request(request: ChatCompletionRequest, stream: bool) -> LLMRequest:
    """The runner's request for `request`; the runner's own checks (ranges, the max_tokens
    limit) follow in the service, as for /llm."""
    messages = []
    for index, message in enumerate(request.messages):
        role = ROLES.get(message.role)
        if role is None:
            raise invalid(
                f"Role {message.role!r} is not supported; use system, developer, user or "
                "assistant.",
                f"messages[{index}].role",
            )
        messages.append(LLMMessage(role=role, content=message_text(message, index)))
    fields: dict[str, Any] = {
        "messages": messages,
        "model": request.model,
        "stream": stream,
        "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        "top_p": DEFAULT_TOP_P if request.top_p is None else request.top_p,
    }
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    if request.top_k is not None:
        # 0 means "off" in llama.cpp's dialect, -1 in the runner's.
        fields["top_k"] = request.top_k if request.top_k > 0 else -1
    return LLMRequest(**fields)
