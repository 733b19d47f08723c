"""The OpenAI door's translation, without a model: request checks and refusals, stop
sequences, the error table, sizes and subtitle formats."""

from __future__ import annotations

import pytest

from adapter.openai.audio import TranscriptionRequest, return_timestamps, subtitles
from adapter.openai.chat import StopScanner
from adapter.openai.chat_request import parse_chat_request, to_llm_request
from adapter.openai.errors import OpenAIError, from_runner_error
from adapter.openai.images import parse_image_request, parse_size, to_text_to_image
from contract.errors import (
    BadRequestError,
    InferenceError,
    OverloadedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnknownModelError,
    UnsupportedMediaError,
)
from contract.schemas import Chunk, TextResponse

USER = [{"role": "user", "content": "hi"}]


def refusal(body: dict) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request(body)
    assert caught.value.status_code == 400
    return caught.value


def test_a_chat_request_becomes_the_runners_llm_request():
    request = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_tokens": 9,
            "max_completion_tokens": 7,
            "temperature": 0,
            "top_p": 0.5,
            "seed": 3,
            "n": 1,
            # The workerbee dispatcher's own fields are tolerated.
            "top_k": 0,
            "repeat_penalty": 1.1,
            "mirostat_mode": 0,
            "gpu_filter": {},
        }
    )
    llm = to_llm_request(request, stream=True)
    assert [(m.role, m.content) for m in llm.messages] == [("system", "be brief"), ("user", "a\nb")]
    assert (llm.model, llm.max_tokens, llm.temperature, llm.top_p, llm.top_k, llm.stream) == (
        "m",
        7,
        0,
        0.5,
        -1,
        True,
    )


def test_left_out_sampling_fields_take_openais_defaults():
    llm = to_llm_request(parse_chat_request({"messages": USER}), stream=False)
    assert (llm.temperature, llm.top_p, llm.model) == (1.0, 1.0, "")


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("n", 2, "n"),
        ("tools", [{"type": "function", "function": {"name": "f"}}], "tools"),
        ("tool_choice", "auto", "tool_choice"),
        ("response_format", {"type": "json_object"}, "response_format"),
        ("logprobs", True, "logprobs"),
        ("logit_bias", {"1": 2.0}, "logit_bias"),
        ("presence_penalty", 0.5, "presence_penalty"),
        ("stop", ["a", "b", "c", "d", "e"], "stop"),
        ("messages", [], "messages"),
        ("messages", [{"content": "x"}], "messages[0].role"),
        ("temperature", "hot", "temperature"),
    ],
)
def test_what_the_runner_cannot_honour_is_refused_naming_the_parameter(field, value, param):
    error = refusal({"messages": USER, field: value})
    assert error.param == param, error.message


def test_roles_and_content_parts_are_refused_at_translation():
    for messages, param in (
        ([{"role": "tool", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
    ):
        with pytest.raises(OpenAIError) as caught:
            to_llm_request(parse_chat_request({"messages": messages}), stream=False)
        assert caught.value.param == param


def test_a_stop_sequence_cuts_the_text_even_across_pieces():
    scanner = StopScanner(["END", "\n\n"])
    sent = []
    for piece in ["Hello E", "N", "Dless", " tail"]:
        text, stopped = scanner.feed(piece)
        sent.append(text)
        if stopped:
            break
    assert "".join(sent) == "Hello " and stopped
    scanner = StopScanner(["END"])
    assert scanner.feed("abc E") == ("abc ", False)
    assert scanner.feed("x") == ("Ex", False)
    assert scanner.feed("EN") == ("", False)
    assert scanner.flush() == "EN"


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (UnknownModelError("no"), 404, "invalid_request_error", "model_not_found"),
        (BadRequestError("bad"), 400, "invalid_request_error", None),
        (UnauthorizedError("who"), 401, "invalid_request_error", "invalid_api_key"),
        (UnsupportedMediaError("wav?"), 400, "invalid_request_error", "invalid_file_format"),
        (OverloadedError("full", retry_after_s=2), 429, "requests", "rate_limit_exceeded"),
        (
            ServiceUnavailableError("down", retry_after_s=3),
            503,
            "server_error",
            "service_unavailable",
        ),
        (InferenceError("boom"), 500, "server_error", None),
    ],
)
def test_runner_errors_take_openais_status_and_shape(error, status, kind, code):
    answer = from_runner_error(error)
    assert (answer.status_code, answer.type, answer.code) == (status, kind, code)
    assert set(answer.body()["error"]) == {"message", "type", "param", "code"}
    if status in (429, 503):
        assert answer.headers() == {"Retry-After": str(error.retry_after_s)}


def test_an_unnamed_model_that_cannot_be_chosen_is_a_400_not_a_404():
    assert from_runner_error(UnknownModelError("several"), model_named=False).status_code == 400


def test_image_sizes_and_formats():
    assert parse_size(None) == parse_size("auto") == (1024, 1024)
    assert parse_size("64x48") == (64, 48)
    with pytest.raises(OpenAIError) as caught:
        parse_size("big")
    assert caught.value.param == "size"
    with pytest.raises(OpenAIError) as caught:
        parse_image_request({"prompt": "x", "response_format": "url"})
    assert caught.value.param == "response_format"
    params = to_text_to_image(
        parse_image_request(
            {"prompt": "x", "n": 2, "size": "64x48", "model": "m", "hyperparameters": {"steps": 3}}
        )
    )
    assert (
        params.width,
        params.height,
        params.num_images_per_prompt,
        params.model_id,
        params.num_inference_steps,
    ) == (64, 48, 2, "m", 3)


def test_transcription_timestamps_and_subtitles():
    def request(fmt: str, granularities: list[str] | None = None) -> TranscriptionRequest:
        return TranscriptionRequest(
            b"x",
            "a.wav",
            "audio/wav",
            response_format=fmt,
            timestamp_granularities=granularities or [],
        )

    assert return_timestamps(request("json")) == "false"
    assert return_timestamps(request("srt")) == "sentence"
    assert return_timestamps(request("verbose_json", ["word"])) == "word"
    result = TextResponse(
        text="a b",
        chunks=[Chunk(timestamp=[0.0, 1.5], text=" a"), Chunk(timestamp=[61.25, None], text=" b")],
    )
    assert subtitles(result, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\na\n\n2\n00:01:01,250 --> 00:01:01,250\nb\n"
    )
    assert subtitles(result, "vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\na\n")
