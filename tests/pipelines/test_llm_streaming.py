"""/llm with `stream: true`: the runner's server-sent events, read off the byte stream; events
arriving while the answer is still being generated; a client leaving stops the generation."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from contract.schemas import LLMResponse
from tests.support.apps import llm_entry, make_app, running_client, serve
from tests.support.llm import GREEDY, GatedLLM, event_payloads
from tests.support.local_apps import app_with_glue


@pytest.fixture(scope="module")
def client(tiny_llm, tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("llm-stream"), [llm_entry(tiny_llm)])
    with running_client(app) as c:
        yield c


def stream(client, **body) -> tuple[httpx.Response, list[str]]:
    with client.stream("POST", "/llm", json={**body, "stream": True}) as response:
        raw = response.read()
    return response, event_payloads(raw) if response.status_code == 200 else []


def test_events_follow_the_runners_format_and_add_up_to_the_answer(client):
    response, payloads = stream(client, **GREEDY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert payloads[-1] == "[DONE]"
    chunks = [LLMResponse.model_validate_json(payload) for payload in payloads[:-1]]
    assert len(chunks) >= 2
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    for chunk in chunks:
        [choice] = chunk.choices
        assert choice.index == 0 and choice.message is None
        assert choice.delta is not None and choice.delta.role == "assistant"
        assert chunk.model == "test/tiny-llm"
        assert chunk.usage.total_tokens == chunk.usage.prompt_tokens + chunk.usage.completion_tokens
    # Only the last chunk finishes, with the usage of the whole answer.
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [""] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "length"
    counts = [c.usage.completion_tokens for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 24

    whole = client.post("/llm", json=GREEDY).json()
    streamed = "".join(c.choices[0].delta.content for c in chunks)
    assert streamed == whole["choices"][0]["message"]["content"]
    assert chunks[-1].usage.model_dump() == whole["usage"]


def test_refusals_before_streaming_keep_their_status_and_json_body(client):
    response, _ = stream(client, **{**GREEDY, "temperature": 9})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    unknown, _ = stream(client, **{**GREEDY, "model": "nope/model"})
    assert unknown.status_code == 400
    assert "not served" in unknown.json()["detail"]["msg"]


def test_failure_before_the_first_chunk_is_the_runners_500(client, monkeypatch):
    from functions.llm import ChatModel

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA error")
        yield  # a generator, like the real one

    monkeypatch.setattr(ChatModel, "stream", broken)
    response, _ = stream(client, **GREEDY)
    assert response.status_code == 500
    assert response.json() == {"detail": {"msg": "Internal server error during LLM processing."}}


def test_failure_mid_stream_is_an_error_event_and_no_done(client, monkeypatch):
    from functions.llm import ChatModel

    real_stream = ChatModel.stream

    def fails_after_one(self, *args, **kwargs):
        deltas = real_stream(self, *args, **kwargs)
        yield next(deltas)
        deltas.close()
        raise RuntimeError("CUDA error")

    monkeypatch.setattr(ChatModel, "stream", fails_after_one)
    response, payloads = stream(client, **GREEDY)
    assert response.status_code == 200
    assert len(payloads) == 2
    first = LLMResponse.model_validate_json(payloads[0])
    assert first.choices[0].delta is not None and first.choices[0].finish_reason == ""
    assert json.loads(payloads[1]) == {"error": "Internal server error during LLM processing."}


# --- on a real server ----------------------------------------------------------------------


@pytest.fixture
def gated():
    glue = GatedLLM(park_at=12)
    yield glue
    glue.gate.set()


def first_event(lines) -> dict:
    return json.loads(next(line for line in lines if line).removeprefix("data: "))


def test_events_arrive_while_the_answer_is_being_generated(tmp_path, tiny_llm, gated):
    body = {**GREEDY, "max_tokens": 40, "stream": True}
    with (
        serve(app_with_glue(tmp_path, [llm_entry(tiny_llm)], gated)) as url,
        httpx.Client(base_url=url, timeout=60) as http,
        http.stream("POST", "/llm", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        first = first_event(lines)
        # Generation is held at token 12 of 40 until the gate opens: this event came before.
        assert not gated.gate.is_set()
        assert gated.parked.wait(60)
        assert first["usage"]["completion_tokens"] < 12
        assert first["choices"][0]["finish_reason"] == ""
        gated.gate.set()
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"
    last = json.loads(rest[-2].removeprefix("data: "))
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == 40
    assert not gated.saw_stop.is_set()


def test_a_client_leaving_mid_stream_stops_generation_and_frees_the_slot(tmp_path, tiny_llm, gated):
    app = app_with_glue(tmp_path, [llm_entry(tiny_llm)], gated)
    limiter = app.state.service.limiters["llm/test/tiny-llm"]
    body = {**GREEDY, "max_tokens": 40, "stream": True}
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        with http.stream("POST", "/llm", json=body) as response:
            lines = response.iter_lines()  # kept: dropping it would close the connection now
            first_event(lines)
            assert gated.parked.wait(60)
            assert limiter.in_flight == 1
        # The connection is closed with the answer half done; the gate never opens.
        assert gated.saw_stop.wait(60), "generation never saw the stop flag"
        deadline = time.monotonic() + 60
        while limiter.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert limiter.in_flight == 0
        # The model's thread is free again: the next request is served.
        gated.gate.set()
        after = http.post("/llm", json={**GREEDY, "max_tokens": 3})
        assert after.status_code == 200
        assert after.json()["usage"]["completion_tokens"] == 3
