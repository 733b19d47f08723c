"""The workerbee worker inside a running adapter, against a real WebSocket dispatcher
(tests/workerbee/dispatcher.py): registration, plain and streamed chat, image generation,
busy on and off, the error shape, reconnection after the dispatcher dies, a clean stop."""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from adapter.app import create_app
from adapter.settings import WorkerbeeSettings
from adapter.workerbee.gpus import MIB
from contract.aimodels import merge_entries, parse_entries
from contract.schemas import LLMChoice, LLMMessage, LLMResponse, LLMTokenUsage, RequestModel
from tests.support.apps import llm_entry, make_app, make_settings, serve
from tests.support.fake_backend import FakeBackend
from tests.workerbee.dispatcher import FIELD_TYPES, Dispatcher, meminfo_available

CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"
LLM = "test/tiny-llm"
HI = [{"role": "user", "content": "hi"}]
BACKOFF_MAX_S = 0.5


def bee(queen: Dispatcher, **fields: Any) -> WorkerbeeSettings:
    return WorkerbeeSettings(
        url=queen.url,
        ln_address="me@getalby.com",
        ping_interval_s=1,
        backoff_initial_s=0.05,
        backoff_max_s=BACKOFF_MAX_S,
        **fields,
    )


class SlowStreamBackend(FakeBackend):
    """Streams its LLM answer in three pieces `gap_s` apart."""

    gap_s: float = 0.3

    async def stream(self, model: Any, request: RequestModel) -> AsyncIterator[BaseModel]:
        for index, text in enumerate(("a", "b", "c")):
            await asyncio.sleep(self.gap_s)
            yield LLMResponse(
                id="x",
                model=model.model_id,
                created=0,
                usage=LLMTokenUsage(
                    prompt_tokens=3, completion_tokens=index + 1, total_tokens=index + 4
                ),
                choices=[
                    LLMChoice(
                        index=0,
                        finish_reason="stop" if index == 2 else "",
                        delta=LLMMessage(role="assistant", content=text),
                    )
                ],
            )


@contextmanager
def fake_adapter(
    tmp_path, queen: Dispatcher, backend: FakeBackend, **fields: Any
) -> Iterator[tuple[str, Any]]:
    entries = [
        {"pipeline": "llm", "model_id": LLM, "capacity": 1, "runner": {"max_queue": 1}},
        {"pipeline": "text-to-image", "model_id": "test/tiny-sd"},
    ]
    settings = make_settings(tmp_path, workerbee=bee(queen, **fields))
    app = create_app(settings, merge_entries(parse_entries(entries)), backend=backend)
    with serve(app) as url:
        yield url, app


def test_registers_then_answers_plain_and_streamed_chat(tmp_path, tiny_llm):
    with Dispatcher() as queen:
        app = make_app(tmp_path, [llm_entry(tiny_llm, LLM)], workerbee=bee(queen))
        with serve(app):
            registration = queen.registration().message
            assert set(registration) == set(FIELD_TYPES)
            for name, kind in FIELD_TYPES.items():
                assert isinstance(registration[name], kind), (name, registration[name])
            assert registration["models"] == [LLM]
            assert registration["capabilities"] == ["llama-infer"]
            assert registration["cpu_count"] == len(os.sched_getaffinity(0))
            # disk in MB, free memory in bytes: the dispatcher's units, not the page's.
            assert abs(registration["disk_space"] - shutil.disk_usage(tmp_path).free // MIB) < 256
            assert abs(registration["vram"] - meminfo_available()) < 512 * MIB

            queen.send(CHAT, {"model": LLM, "messages": HI, "max_tokens": 4, "temperature": 0})
            reply = queen.reply().message
            assert reply["object"] == "chat.completion" and reply["model"] == LLM
            choice = reply["choices"][0]
            assert choice["index"] == 0 and choice["finish_reason"] in ("stop", "length")
            assert choice["message"]["role"] == "assistant"
            assert isinstance(choice["message"]["content"], str)
            usage = reply["usage"]
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

            sent = queen.send(
                CHAT,
                {"model": LLM, "messages": HI, "max_tokens": 4, "temperature": 0, "stream": True},
            )
            messages = queen.stream()
            # The first chunk comes well inside the dispatcher's ft_timeout (10 s).
            assert messages[0].at - sent < 10.0
            assert messages[-1].message == {}
            chunks = [m.message for m in messages[:-1]]
            assert all(c["object"] == "chat.completion.chunk" for c in chunks)
            assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
            assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (
                len(chunks) - 1
            )
            last = chunks[-1]
            assert last["choices"][0]["finish_reason"] in ("stop", "length")
            assert last["usage"]["completion_tokens"] <= 4
            streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
            assert streamed == choice["message"]["content"]  # greedy: the same answer


def test_busy_while_streaming_and_while_capacity_is_full(tmp_path):
    # Each non-streaming run holds the slot 3 s: the refusal below must come well before.
    backend = SlowStreamBackend(delay_s=3.0)
    with Dispatcher() as queen, fake_adapter(tmp_path, queen, backend) as (url, _app):
        queen.registration()
        # Streaming: the dispatcher takes the worker back once the first chunk comes, so the
        # worker says "busy" after it, and "free" once the stream is over.
        queen.send(CHAT, {"model": LLM, "messages": HI, "stream": True})
        messages = queen.stream()
        assert [
            m.message.get("choices", [{}])[0].get("delta", {}).get("content")
            for m in messages[1:-2]
        ] == ["a", "b", "c"]
        first, end = messages[0].at, messages[-1].at
        busy_after_first = [r for r in queen.busy if first <= r.at < end and r.message["busy"]]
        assert busy_after_first, queen.busy_states()
        queen.wait_busy(False, since=end)

        # Capacity: an HTTP request fills the model's one slot; the worker leaves the rotation,
        # answers a request that comes anyway with "busy" at once, and returns when it frees.
        since = time.monotonic()
        results: queue.Queue[int] = queue.Queue()
        thread = threading.Thread(
            target=lambda: results.put(
                httpx.post(f"{url}/llm", json={"messages": HI}, timeout=30).status_code
            )
        )
        thread.start()
        went_busy = queen.wait_busy(True, since)
        sent = queen.send(CHAT, {"model": LLM, "messages": HI})
        refused = queen.reply()
        assert refused.message == {"error": "busy", "error_type": "busy"}
        # Not queued behind the slot: refused while the HTTP request still holds it.
        assert results.empty() and refused.at - sent < 2.0
        thread.join(30)
        assert results.get_nowait() == 200
        queen.wait_busy(False, since=went_busy)
        metrics = httpx.get(f"{url}/metrics").text
        assert 'workerbee_jobs_total{outcome="busy",url="/v1/chat/completions"} 1.0' in metrics


def test_errors_have_the_protocols_shape(tmp_path):
    with Dispatcher() as queen, fake_adapter(tmp_path, queen, FakeBackend()) as _:
        queen.registration()
        for url, request, error_type in (
            (
                CHAT,
                {"model": "TheBloke/Llama-2-7B-Chat-GGUF:Q4_K_M", "messages": HI},
                "model_not_found",
            ),
            (CHAT, {"model": LLM, "messages": HI, "n": 2}, "invalid_request_error"),
            ("/v1/embeddings", {"model": LLM, "input": "x"}, "unsupported_url"),
            (IMAGES, {"prompt": "x"}, "model_not_found"),  # the dispatcher's SDXL name
        ):
            queen.send(url, request)
            reply = queen.reply().message
            assert set(reply) == {"error", "error_type"}, reply
            assert isinstance(reply["error"], str) and reply["error"]
            assert reply["error_type"] == error_type


def test_any_model_answers_other_names_with_the_default(tmp_path):
    with Dispatcher() as queen, fake_adapter(tmp_path, queen, FakeBackend(), any_model=True) as _:
        queen.registration()
        queen.send(CHAT, {"model": "TheBloke/Llama-2-7B-Chat-GGUF:Q4_K_M", "messages": HI})
        assert queen.reply().message["model"] == LLM
        queen.send(IMAGES, {"prompt": "a fox", "size": "16x16"})
        image = queen.reply().message["data"][0]
        assert base64.b64decode(image["b64_json"]).startswith(b"\x89PNG")


def test_reconnects_and_registers_again_when_the_dispatcher_comes_back(tmp_path):
    backend = FakeBackend(delay_s=30.0)
    queen = Dispatcher().start()
    try:
        with fake_adapter(tmp_path, queen, backend) as (url, app):
            queen.registration()
            # A request in flight when the dispatcher dies is stopped, logged and counted.
            queen.send(CHAT, {"model": LLM, "messages": HI})
            limiter = app.state.service.limiters[f"llm/{LLM}"]
            deadline = time.monotonic() + 10
            while limiter.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert limiter.in_flight == 1
            queen.kill()
            time.sleep(1.0)  # the worker retries against a closed port meanwhile
            queen = Dispatcher(port=queen.port).start()
            back = time.monotonic()
            again = queen.registration(timeout=BACKOFF_MAX_S + 5)
            assert again.at - back < BACKOFF_MAX_S + 1.5  # the backoff is capped
            assert again.message["models"] == [LLM, "test/tiny-sd"]
            assert limiter.in_flight == 0  # the lost request gave its slot back
            metrics = httpx.get(f"{url}/metrics").text
            assert 'workerbee_jobs_total{outcome="lost",url="/v1/chat/completions"} 1.0' in (
                metrics
            )
            assert "workerbee_registrations_total 2.0" in metrics
            assert "workerbee_connected 1.0" in metrics
    finally:
        queen.stop()


def test_stops_cleanly_with_the_app(tmp_path):
    with Dispatcher() as queen:
        with fake_adapter(tmp_path, queen, FakeBackend()):
            queen.registration()
        assert queen.closed.get(timeout=10) == 1000  # a normal close, not a dropped socket
        with pytest.raises(queue.Empty):
            queen.registrations.get(timeout=BACKOFF_MAX_S * 2)
