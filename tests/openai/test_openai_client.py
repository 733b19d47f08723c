"""OpenAI's official client against the adapter as a real process (`uvicorn adapter.main:app`)
over tiny random-weight models: every answer is parsed by the client exactly as it parses
OpenAI's own service, and every error becomes the client's own exception type."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from tests.support.apps import llm_entry, sd_entry, whisper_entry
from tests.support.audio import wav
from tests.support.runner_process import RunnerProcess

TOKEN = "sk-test-token"
LLM = "test/tiny-llm"
SD = "test/tiny-sd"
WHISPER = "test/tiny-whisper"


@pytest.fixture(scope="module")
def runner(
    tiny_llm: Path, tiny_sd: Path, tiny_whisper: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunnerProcess]:
    entries = [
        # One request at a time and none waiting, so a burst overloads it.
        llm_entry(tiny_llm, LLM, runner={"max_in_flight": 1, "max_queue": 0}),
        sd_entry(tiny_sd, SD, runner={"num_inference_steps": 2}),
        whisper_entry(tiny_whisper, WHISPER),
    ]
    process = RunnerProcess(tmp_path_factory.mktemp("openai"), entries, ADAPTER_AUTH_TOKEN=TOKEN)
    with process:
        yield process


def client(runner: RunnerProcess, api_key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{runner.url}/v1", api_key=api_key, max_retries=0, timeout=120)


def test_chat_completion(runner):
    answer = client(runner).chat.completions.create(
        model=LLM,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        seed=1,
    )
    assert answer.object == "chat.completion"
    assert answer.model == LLM
    choice = answer.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens <= 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_an_empty_model_name_picks_the_pipelines_default(runner):
    answer = client(runner).chat.completions.create(
        model="", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=2
    )
    assert answer.model == LLM


def test_streamed_chat_completion_with_usage(runner):
    stream = client(runner).chat.completions.create(
        model=LLM,
        messages=[{"role": "user", "content": "tell me a story"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason in ("stop", "length")
    # The last chunk carries the usage and no choice; no other carries usage.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].usage.completion_tokens <= 8
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    plain = client(runner).chat.completions.create(
        model=LLM,
        messages=[{"role": "user", "content": "tell me a story"}],
        max_tokens=8,
        temperature=0,
    )
    assert text == plain.choices[0].message.content  # greedy: the same answer either way


def test_image_generation(runner):
    answer = client(runner).images.generate(model=SD, prompt="a red fox", size="64x48", n=2)
    assert len(answer.data) == 2
    for image in answer.data:
        assert image.b64_json is not None and image.url is None
        decoded = Image.open(io.BytesIO(base64.b64decode(image.b64_json)))
        assert (decoded.format, decoded.size) == ("PNG", (64, 48))


def test_transcription_in_each_format(runner):
    audio = ("hello.wav", wav(1.0), "audio/wav")
    api = client(runner).audio.transcriptions
    plain = api.create(model=WHISPER, file=audio)
    assert isinstance(plain.text, str)
    verbose = api.create(
        model=WHISPER,
        file=audio,
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    assert verbose.duration == pytest.approx(1.0, abs=0.05)
    assert isinstance(verbose.text, str) and verbose.segments is not None
    assert all(s.end >= s.start for s in verbose.segments or [])
    text = api.create(model=WHISPER, file=audio, response_format="text")
    assert isinstance(text, str)
    vtt = api.create(model=WHISPER, file=audio, response_format="vtt")
    assert vtt.startswith("WEBVTT")


def test_model_listing(runner):
    api = client(runner).models
    assert [model.id for model in api.list()] == [LLM, SD, WHISPER]
    model = api.retrieve(LLM)
    assert (model.id, model.object) == (LLM, "model")
    with pytest.raises(openai.NotFoundError):
        api.retrieve("no/such-model")


def test_auth_failure(runner):
    for key in ("wrong-token", ""):
        with pytest.raises(openai.AuthenticationError) as caught:
            client(runner, api_key=key or "x").models.list()
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
    response = httpx.get(f"{runner.url}/v1/models")  # no Authorization header at all
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_unknown_model(runner):
    with pytest.raises(openai.NotFoundError) as caught:
        client(runner).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert caught.value.type == "invalid_request_error"


def test_a_request_the_runner_cannot_honour_is_a_400(runner):
    with pytest.raises(openai.BadRequestError) as caught:
        client(runner).chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert caught.value.param == "n"


def test_overload_is_a_429_with_retry_after(runner):
    """A model that serves one request at a time and queues none: while a stream holds its
    slot, another request gets OpenAI's 429, which the client raises as RateLimitError."""
    first_chunk, ended = threading.Event(), threading.Event()

    def long_stream() -> None:
        # Greedy: the tiny model then never samples EOS, so the stream runs its 1024 tokens
        # (seconds on CPU) instead of ending at a random early EOS before the probe arrives.
        stream = client(runner).chat.completions.create(
            model=LLM,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=1024,
            temperature=0,
            stream=True,
        )
        for _chunk in stream:
            first_chunk.set()
        ended.set()

    worker = threading.Thread(target=long_stream)
    worker.start()
    assert first_chunk.wait(timeout=60), "the long stream never produced a chunk"
    with pytest.raises(openai.APIStatusError) as caught:
        client(runner).chat.completions.create(
            model=LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    stream_was_running = not ended.is_set()
    worker.join(timeout=120)
    assert stream_was_running, "the long stream ended before the probe was answered"
    error = caught.value
    assert isinstance(error, openai.RateLimitError), error
    assert error.response.headers["retry-after"] == "2"
    assert error.code == "rate_limit_exceeded"
