"""The OpenAI door in process over a scripted backend (no model): stop sequences end the
generation early, a failure mid-stream is OpenAI's error event, and malformed requests get
OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from adapter.app import create_app
from contract.aimodels import merge_entries, parse_entries
from contract.errors import InferenceError
from contract.schemas import LLMChoice, LLMMessage, LLMResponse, LLMTokenUsage, RequestModel
from tests.support.apps import make_settings
from tests.support.fake_backend import FakeBackend

LLM = "test/llm"
HI = [{"role": "user", "content": "hi"}]


@dataclass
class ScriptedBackend(FakeBackend):
    """Streams `pieces` one LLM chunk each; remembers how many were taken and whether the
    stream was closed before its end."""

    pieces: tuple[str, ...] = ("Hello", " wor", "ld. E", "ND and on", " and on")
    fail_after: int | None = None
    taken: int = 0
    closed_early: bool = False

    async def stream(self, model: Any, request: RequestModel) -> AsyncIterator[BaseModel]:
        try:
            for index, text in enumerate(self.pieces):
                if self.fail_after is not None and index == self.fail_after:
                    raise InferenceError("Internal server error during LLM processing.")
                self.taken += 1
                last = index == len(self.pieces) - 1
                yield LLMResponse(
                    id="x",
                    model=model.model_id,
                    created=0,
                    usage=LLMTokenUsage(
                        prompt_tokens=2, completion_tokens=index + 1, total_tokens=index + 3
                    ),
                    choices=[
                        LLMChoice(
                            index=0,
                            finish_reason="length" if last else "",
                            delta=LLMMessage(role="assistant", content=text),
                        )
                    ],
                )
        except GeneratorExit:
            self.closed_early = True
            raise


def door(tmp_path, backend: FakeBackend, **settings: Any) -> TestClient:
    entries = [
        {"pipeline": "llm", "model_id": LLM},
        {"pipeline": "audio-to-text", "model_id": "test/whisper"},
    ]
    app = create_app(
        make_settings(tmp_path, **settings), merge_entries(parse_entries(entries)), backend=backend
    )
    return TestClient(app)


def events(response: Any) -> list[Any]:
    lines = [line[len("data: ") :] for line in response.text.split("\n\n") if line]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_a_stop_sequence_ends_the_answer_and_its_generation(tmp_path):
    backend = ScriptedBackend()
    with door(tmp_path, backend) as client:
        answer = client.post(
            "/v1/chat/completions", json={"model": LLM, "messages": HI, "stop": "END"}
        ).json()
        assert answer["choices"][0]["message"]["content"] == "Hello world. "
        assert answer["choices"][0]["finish_reason"] == "stop"
        assert answer["usage"]["completion_tokens"] == 4
        assert backend.taken == 4 and backend.closed_early

        backend.taken = 0
        streamed = events(
            client.post(
                "/v1/chat/completions",
                json={
                    "model": LLM,
                    "messages": HI,
                    "stop": ["END", "zzz"],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
        )
        assert streamed[-1] == "[DONE]"
        text = "".join(
            e["choices"][0]["delta"].get("content", "") for e in streamed[:-1] if e["choices"]
        )
        assert text == "Hello world. "
        assert streamed[-3]["choices"][0]["finish_reason"] == "stop"
        assert streamed[-2]["choices"] == [] and streamed[-2]["usage"]["completion_tokens"] == 4
        assert backend.taken == 4


def test_without_a_stop_the_length_limit_is_reported(tmp_path):
    with door(tmp_path, ScriptedBackend()) as client:
        streamed = events(
            client.post("/v1/chat/completions", json={"model": LLM, "messages": HI, "stream": True})
        )
        assert streamed[-2]["choices"][0]["finish_reason"] == "length"
        assert all("usage" not in e for e in streamed[:-1])


def test_a_failure_mid_stream_is_an_error_event(tmp_path):
    with door(tmp_path, ScriptedBackend(fail_after=2)) as client:
        response = client.post(
            "/v1/chat/completions", json={"model": LLM, "messages": HI, "stream": True}
        )
        assert response.status_code == 200
        streamed = events(response)
        assert streamed[-1]["error"]["type"] == "server_error"
        assert "[DONE]" not in streamed


def test_a_failure_before_the_first_chunk_keeps_its_status(tmp_path):
    with door(tmp_path, ScriptedBackend(fail_after=0)) as client:
        response = client.post(
            "/v1/chat/completions", json={"model": LLM, "messages": HI, "stream": True}
        )
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"


def test_malformed_requests_get_openais_error_shape(tmp_path):
    with door(tmp_path, FakeBackend(), auth_token="t") as client:
        auth = {"Authorization": "Bearer t"}
        for response, status, param in (
            (client.post("/v1/chat/completions", content=b"{no", headers=auth), 400, None),
            (
                client.post("/v1/chat/completions", json={"model": LLM}, headers=auth),
                400,
                "messages",
            ),
            (
                client.post("/v1/audio/transcriptions", data={"model": "x"}, headers=auth),
                400,
                "file",
            ),
            (
                client.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("a.wav", b"RIFF")},
                    data={"response_format": "csv"},
                    headers=auth,
                ),
                400,
                "response_format",
            ),
            (client.get("/v1/nothing-here", headers=auth), 404, None),
            (client.post("/v1/chat/completions", json={"messages": HI}), 401, None),
            (
                client.post(
                    "/v1/chat/completions",
                    json={"messages": HI},
                    headers={"Authorization": "Basic t"},
                ),
                401,
                None,
            ),
        ):
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["param"] == param


def test_an_undecodable_upload_is_openais_400(tmp_path):
    with door(tmp_path, FakeBackend()) as client:
        response = client.post(
            "/v1/audio/transcriptions",
            data={"model": "test/whisper"},
            files={"file": ("a.wav", b"not audio at all", "audio/wav")},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_file_format"


def test_the_runner_routes_keep_their_own_error_shape(tmp_path):
    with door(tmp_path, FakeBackend()) as client:
        response = client.post("/llm", json={"model": "nope", "messages": HI})
        assert response.status_code == 400 and "detail" in response.json()


def test_text_to_video_has_no_openai_route_and_is_not_listed(tmp_path):
    from contract.pipelines import Pipeline
    from tests.support.fake_backend import fake_app, fake_model_id

    with TestClient(fake_app(tmp_path)) as client:
        listed = {model["id"] for model in client.get("/v1/models").json()["data"]}
        assert fake_model_id(Pipeline.LLM) in listed
        assert fake_model_id(Pipeline.TEXT_TO_VIDEO) not in listed
        missing = client.get(f"/v1/models/{fake_model_id(Pipeline.TEXT_TO_VIDEO)}")
        assert missing.status_code == 404
