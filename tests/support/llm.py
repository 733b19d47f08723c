"""LLM streaming helpers: a greedy request, the event framing of a streamed answer, and the real
LLM glue held at a token."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from adapter.pipelines.llm import LLMRunner
from contract.schemas import RequestModel

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "Write a poem about the sea."}]
GREEDY: dict[str, Any] = {"messages": MESSAGES, "temperature": 0, "max_tokens": 24}


def event_payloads(raw: bytes) -> list[str]:
    """The payload of each event, checking the framing: `data: <payload>` then a blank line."""
    text = raw.decode("utf-8")
    assert text.endswith("\n\n"), text[-80:]
    events = text[:-2].split("\n\n")
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, event
    return [event.removeprefix("data: ") for event in events]


class GatedLLM(LLMRunner):
    """The real LLM glue, whose generation parks at one token until the test lets it go on
    (or the request is abandoned). It records whether generation saw the stop flag."""

    def __init__(self, park_at: int) -> None:
        self.park_at = park_at
        self.gate = threading.Event()
        self.parked = threading.Event()
        self.saw_stop = threading.Event()

    def stream(
        self, handle: Any, request: RequestModel, should_stop: Callable[[], bool]
    ) -> Iterator[BaseModel]:
        checks = 0

        def gated_should_stop() -> bool:  # called by generate after each token
            nonlocal checks
            checks += 1
            if checks == self.park_at:
                self.parked.set()
                while not self.gate.wait(0.01) and not should_stop():
                    pass
            if should_stop():
                self.saw_stop.set()
                return True
            return False

        yield from super().stream(handle, request, gated_should_stop)
