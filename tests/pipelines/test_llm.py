"""/llm over HTTP on a tiny Llama chat model loaded with from_pretrained: answers, token usage,
max_tokens, stop tokens, validation and errors."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest
from transformers import AutoTokenizer, GenerationConfig

from tests.support.apps import llm_entry, make_app, running_client

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Tell me a story about a lighthouse."},
]
GREEDY = {"messages": MESSAGES, "temperature": 0, "max_tokens": 12}


@pytest.fixture(scope="module")
def client(tiny_llm, tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("llm"), [llm_entry(tiny_llm)])
    with running_client(app) as c:
        yield c


@pytest.fixture(scope="module")
def tokenizer(tiny_llm):
    return AutoTokenizer.from_pretrained(tiny_llm)


def prompt_length(tokenizer, messages) -> int:
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])


def chat(client, **body):
    response = client.post("/llm", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_answer_has_the_runners_shape_and_counts_tokens(client, tokenizer):
    before = int(time.time())
    body = chat(client, **GREEDY)
    assert set(body) == {"id", "model", "created", "usage", "choices"}
    assert body["id"].startswith("chatcmpl-")
    suffix = body["id"].removeprefix("chatcmpl-")
    assert str(uuid.UUID(suffix)) == suffix  # a UUID, written as uuid4() writes one
    assert body["model"] == "test/tiny-llm"
    assert before <= body["created"] <= int(time.time())
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["delta"] is None
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    # Random weights rarely pick the end token: the answer runs to max_tokens.
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["prompt_tokens"] == prompt_length(tokenizer, MESSAGES)
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12


def test_max_tokens_bounds_the_answer(client):
    for max_tokens in (1, 5):
        body = chat(client, **{**GREEDY, "max_tokens": max_tokens})
        assert body["usage"]["completion_tokens"] == max_tokens
        assert body["choices"][0]["finish_reason"] == "length"
    short = chat(client, **{**GREEDY, "max_tokens": 5})["choices"][0]["message"]["content"]
    long = chat(client, **{**GREEDY, "max_tokens": 30})["choices"][0]["message"]["content"]
    assert long.startswith(short)  # greedy: the longer answer continues the shorter one


def test_temperature_zero_is_deterministic_and_sampling_varies(client):
    first = chat(client, **GREEDY)["choices"][0]["message"]["content"]
    assert chat(client, **GREEDY)["choices"][0]["message"]["content"] == first
    sampled = {
        chat(client, messages=MESSAGES, temperature=1.5, top_p=1.0, top_k=-1, max_tokens=12)[
            "choices"
        ][0]["message"]["content"]
        for _ in range(4)
    }
    assert len(sampled) > 1


def test_top_k_one_is_greedy(client):
    greedy = chat(client, **GREEDY)["choices"][0]["message"]["content"]
    top1 = chat(client, **{**GREEDY, "temperature": 1.0, "top_k": 1})
    assert top1["choices"][0]["message"]["content"] == greedy


def test_model_field_picks_the_model_or_is_refused(client):
    assert chat(client, **GREEDY, model="test/tiny-llm")["model"] == "test/tiny-llm"
    response = client.post("/llm", json={**GREEDY, "model": "meta-llama/other"})
    assert response.status_code == 400
    assert "not served for llm" in response.json()["detail"]["msg"]


# --- the answer ends on the model's own stop token -----------------------------------------


@pytest.fixture(scope="module")
def stopping_llm(tiny_llm, tokenizer, tmp_path_factory):
    """The tiny model with one more end token in its generation config (real models list
    several, e.g. Llama 3's <|eot_id|>): the token its greedy answer holds at position 3."""
    import torch

    from functions.llm import ChatModel

    path = tmp_path_factory.mktemp("stop") / "tiny-llm-stop"
    shutil.copytree(tiny_llm, path)
    chat_model = ChatModel.load(path, device=torch.device("cpu"), dtype=torch.float32)
    prompt = chat_model.prompt_ids(MESSAGES)
    generated = chat_model.model.generate(
        torch.tensor([prompt]), max_new_tokens=4, do_sample=False
    )[0, len(prompt) :].tolist()
    stop_token = generated[3]
    first = generated.index(stop_token)
    config = GenerationConfig.from_pretrained(path)
    config.eos_token_id = [config.eos_token_id, stop_token]
    config.save_pretrained(path)
    expected = tokenizer.decode(generated[:first], skip_special_tokens=True)
    return path, first + 1, expected


def test_answer_ending_on_a_stop_token_reports_stop(tmp_path, stopping_llm):
    path, tokens, expected = stopping_llm
    with running_client(make_app(tmp_path, [llm_entry(path)])) as client:
        body = chat(client, **{**GREEDY, "max_tokens": 20})
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == tokens  # the stop token counts
    assert body["choices"][0]["message"]["content"] == expected  # ...but is not shown


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"temperature": -0.1}, "temperature must be between 0 and 2"),
        ({"top_p": 1.5}, "top_p must be between 0 and 1"),
        ({"top_p": -1}, "top_p must be between 0 and 1"),
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"top_k": -2}, "top_k must be -1"),
        ({"max_tokens": 5000}, "ADAPTER_MAX_LLM_TOKENS=4096"),
        ({"messages": []}, "messages must not be empty"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role must be one of"),
    ],
)
def test_out_of_range_parameters_get_400(client, fields, message):
    response = client.post("/llm", json={**GREEDY, **fields})
    assert response.status_code == 400
    assert message in response.json()["detail"]["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"temperature": 0.5},  # no messages
        {"messages": "hello"},
        {"messages": [{"role": "user"}]},
        {"messages": MESSAGES, "temperature": "hot"},
        {"messages": MESSAGES, "max_tokens": 1.5},
        {"messages": MESSAGES, "stream": "sometimes"},
    ],
)
def test_wrong_types_get_422(client, body):
    response = client.post("/llm", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_malformed_json_gets_422(client):
    response = client.post(
        "/llm", content=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_limits_are_settings(app_factory, tiny_llm, tokenizer):
    limits = {"max_llm_tokens": 8, "max_llm_prompt_tokens": 40}
    with running_client(app_factory([llm_entry(tiny_llm)], limits=limits)) as client:
        over = client.post("/llm", json={**GREEDY, "max_tokens": 9})
        assert over.status_code == 400
        assert "ADAPTER_MAX_LLM_TOKENS=8" in over.json()["detail"]["msg"]
        long_prompt = [{"role": "user", "content": "lighthouse " * 40}]
        assert prompt_length(tokenizer, long_prompt) > 40
        response = client.post("/llm", json={**GREEDY, "messages": long_prompt, "max_tokens": 8})
        assert response.status_code == 400
        assert "ADAPTER_MAX_LLM_PROMPT_TOKENS=40" in response.json()["detail"]["msg"]
        assert client.post("/llm", json={**GREEDY, "max_tokens": 8}).status_code == 200


def test_a_pipeline_failure_is_the_runners_500(client, monkeypatch):
    from functions.llm import ChatModel

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(ChatModel, "complete", broken)
    response = client.post("/llm", json=GREEDY)
    assert response.status_code == 500
    assert response.json() == {"detail": {"msg": "Internal server error during LLM processing."}}


def test_streamed_pieces_add_up_to_the_decoded_text_across_multibyte_characters(tokenizer):
    from functions.llm import _IncrementalText

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    text = "héllo wörld, 日本語 and 🌊 waves"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # some characters span several byte tokens
    pieces = _IncrementalText(decode)
    out = [pieces.add(ids[: n + 1]) for n in range(len(ids))]
    out.append(pieces.flush(ids))
    assert "".join(out) == decode(ids) == text
    assert not any("\ufffd" in piece for piece in out)


def test_a_chat_template_refusing_the_conversation_is_a_value_error(tiny_llm):
    import torch
    from transformers import AutoTokenizer

    from functions.llm import ChatModel

    loaded = ChatModel.load(tiny_llm, device=torch.device("cpu"), dtype=torch.float32)
    strict = AutoTokenizer.from_pretrained(tiny_llm)
    # Like the templates of models that need user/assistant turns to alternate.
    strict.chat_template = (
        "{% if messages[0]['role'] != 'user' %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
        "{% endif %}{{ messages[0]['content'] }}"
    )
    model = ChatModel(loaded.model, strict)
    assert model.prompt_ids([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="roles must alternate"):
        model.prompt_ids([{"role": "assistant", "content": "hi"}])
