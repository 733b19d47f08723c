"""Chat completion with a transformers causal language model and its tokenizer's chat template.

`complete` answers at once; `stream` yields the answer as it is generated. Streaming runs
`generate` on a helper thread that hands each new token over a queue (as transformers'
`TextIteratorStreamer` does), so the caller's thread iterates plain Python; closing the
iterator ends generation at its next token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import GenerationCancelled
from functions.inputs import check_text, inference_mode

if TYPE_CHECKING:
    import torch

ROLES = ("system", "user", "assistant")
STOP = "stop"  # the model ended its answer
LENGTH = "length"  # max_tokens (or the model's context) ran out first


@dataclass(frozen=True)
class Sampling:
    """How to pick each token: temperature 0 is greedy; top_k -1 (or 0) and top_p 1 are off."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int  # every token generated, the one that ended the answer included
    finish_reason: str


@dataclass
class CompletionDelta:
    """The text generated since the previous delta; the last one carries the finish reason."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = ""


def check_inputs(*, messages: list[dict[str, str]], sampling: Sampling) -> None:
    """Refuse a conversation or sampling `ChatModel` cannot take (InputError, naming the field).

    Plain Python: the adapter calls it before a request takes any capacity. What only the
    loaded model knows (its chat template, its context length) is checked when it runs.
    """
    if not messages:
        raise InputError("messages must not be empty.")
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise InputError(
                f"messages[{index}].role must be one of {', '.join(ROLES)}, got {role!r}."
            )
        check_text(f"messages[{index}].content", message.get("content", ""))
    if not 0 <= sampling.temperature <= 2:
        raise InputError(f"temperature must be between 0 and 2, got {sampling.temperature}.")
    if not 0 <= sampling.top_p <= 1:
        raise InputError(f"top_p must be between 0 and 1, got {sampling.top_p}.")
    if sampling.top_k < -1:
        raise InputError(f"top_k must be -1 (off) or positive, got {sampling.top_k}.")
    if sampling.max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, got {sampling.max_tokens}.")


class ChatModel:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template: not a chat model")
        self.model = model
        self.tokenizer = tokenizer
        config = model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        if eos is None:
            raise ValueError("neither the generation config nor the tokenizer names an EOS token")
        self.eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos)
        pad = config.pad_token_id if config.pad_token_id is not None else tokenizer.pad_token_id
        self.pad_id: int = self.eos_ids[0] if pad is None else pad
        self.context_tokens: int | None = getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def load(cls, folder: Path, *, device: torch.device, dtype: torch.dtype) -> ChatModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return cls(model.to(device).eval(), tokenizer)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The token ids of the chat template applied to `messages` (which `check_inputs`
        accepted), ready for the answer."""
        from jinja2 import TemplateError

        try:
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        except TemplateError as exc:
            # Templates raise on conversations they do not accept (e.g. roles not alternating).
            raise InputError(f"The model's chat template refused the messages: {exc}.") from exc
        return list(encoded["input_ids"])

    @inference_mode
    def complete(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        should_stop: Callable[[], bool] | None = None,
    ) -> Completion:
        output = self.model.generate(**self._generate_kwargs(prompt_ids, sampling, should_stop))
        if should_stop is not None and should_stop():
            raise GenerationCancelled()
        generated = output[0, len(prompt_ids) :].tolist()
        return Completion(
            text=self._decode(self._visible(generated)),
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(generated),
            finish_reason=self._finish_reason(generated),
        )

    def stream(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[CompletionDelta, None, None]:
        """Yield the answer in pieces as it is generated; the last piece has the finish reason.

        Stops generating when the iterator is closed or `should_stop()` turns true (then
        raising GenerationCancelled rather than finishing the answer).
        """
        closed = threading.Event()

        def stop() -> bool:
            return closed.is_set() or (should_stop is not None and should_stop())

        tokens = _TokenQueue()
        kwargs = self._generate_kwargs(prompt_ids, sampling, stop, streamer=tokens)
        thread = threading.Thread(
            target=tokens.run, args=(self.model.generate, kwargs), name="llm-generate", daemon=True
        )
        thread.start()
        try:
            generated: list[int] = []
            text = _IncrementalText(self._decode)
            for new_ids in tokens:
                generated.extend(new_ids)
                piece = text.add(self._visible(generated))
                if piece:
                    yield CompletionDelta(piece, len(prompt_ids), len(generated))
            if should_stop is not None and should_stop():
                raise GenerationCancelled()
            yield CompletionDelta(
                text.flush(self._visible(generated)),
                len(prompt_ids),
                len(generated),
                finish_reason=self._finish_reason(generated),
            )
        finally:
            closed.set()
            thread.join()

    # --- helpers -----------------------------------------------------------------------

    def _generate_kwargs(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        should_stop: Callable[[], bool] | None,
        streamer: Any = None,
    ) -> dict[str, Any]:
        import torch

        from functions.cancel import stop_when_asked

        max_new_tokens = sampling.max_tokens
        if self.context_tokens is not None:
            room = self.context_tokens - len(prompt_ids)
            if room < 1:
                raise InputError(
                    f"The prompt is {len(prompt_ids)} tokens, which fills the model's context "
                    f"of {self.context_tokens} tokens."
                )
            max_new_tokens = min(max_new_tokens, room)
        input_ids = torch.tensor([prompt_ids], device=self.model.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            "stopping_criteria": stop_when_asked(
                should_stop, prompt_tokens=len(prompt_ids), max_new_tokens=max_new_tokens
            ),
            "streamer": streamer,
        }
        if sampling.temperature == 0:
            # Greedy; the model's own sampling defaults would only draw warnings.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=max(sampling.top_k, 0),  # 0 turns transformers' top-k off
            )
        return kwargs

    def _visible(self, generated: list[int]) -> list[int]:
        """The generated ids without the EOS token that ended the answer."""
        if generated and generated[-1] in self.eos_ids:
            return generated[:-1]
        return generated

    def _finish_reason(self, generated: list[int]) -> str:
        return STOP if generated and generated[-1] in self.eos_ids else LENGTH

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


class _IncrementalText:
    """Turns a growing list of token ids into text pieces that add up to decoding them all.

    Decoding each new token alone would lose the spaces some tokenizers add between words and
    split characters encoded over several tokens, so each step decodes the tokens of the
    previous piece with the new ones and keeps what they add (text-generation-inference's way).
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.prefix_offset = 0  # start of the previous piece's tokens, decoded for context
        self.read_offset = 0  # ids before this are in the text handed out already

    def add(self, ids: list[int]) -> str:
        before = self.decode(ids[self.prefix_offset : self.read_offset])
        after = self.decode(ids[self.prefix_offset :])
        # A trailing U+FFFD is a character still missing its last bytes: wait for them.
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(ids)
        return after[len(before) :]

    def flush(self, ids: list[int]) -> str:
        """Whatever is left once generation has ended, incomplete characters included."""
        before = self.decode(ids[self.prefix_offset : self.read_offset])
        after = self.decode(ids[self.prefix_offset :])
        self.read_offset = len(ids)
        return after[len(before) :] if after.startswith(before) else ""


_END = object()


class _TokenQueue:
    """A `generate` streamer that queues each new token for the thread iterating it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate hands over the prompt first
            self._prompt_seen = True
            return
        self._queue.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self._queue.put(_END)

    def run(self, generate: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        """Run `generate` (on the helper thread); what it raises reaches the iterating one."""
        try:
            generate(**kwargs)
        except BaseException as exc:
            self._queue.put(exc)

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
