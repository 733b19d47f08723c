"""Text-to-speech over real HTTP, as go-livepeer sends it (a JSON body), on tiny VITS models
loaded with from_pretrained; and Parler-TTS refused at start, saying why."""

from __future__ import annotations

import base64
import io
import json
import wave

import httpx
import numpy as np
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from adapter.app import create_app
from contract.aimodels import merge_entries, parse_entries
from contract.errors import ConfigError
from functions.audio import encode_wav
from functions.cancel import GenerationCancelled
from functions.text_to_speech import PARLER_REFUSAL, TextToSpeech
from functions.tiny.caption_speech import build_tiny_blip, build_tiny_vits
from tests.support.apps import make_app, make_settings, model_entry, running_client, serve
from tests.support.runner_spec import assert_contract_error

TOKEN = "tts-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_CHARS = 40
WAV_PREFIX = "data:audio/wav;base64,"
PARLER = "parler-tts/parler-tts-large-v1"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "16k": build_tiny_vits(root / "vits-16k"),
        "22k": build_tiny_vits(root / "vits-22k", seed=1, sampling_rate=22_050),
    }


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, models):
    entries = [
        model_entry("text-to-speech", models["16k"], "test/vits", runner={"default": True}),
        model_entry("text-to-speech", models["22k"], "test/vits-22k"),
    ]
    app = make_app(
        tmp_path_factory.mktemp("tts"),
        entries,
        auth_token=TOKEN,
        limits={"max_tts_chars": MAX_CHARS},
    )
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120, headers=AUTH) as client:
        yield client


def read_wav(url: str) -> tuple[wave._wave_params, np.ndarray]:
    assert url.startswith(WAV_PREFIX), url[:40]
    with wave.open(io.BytesIO(base64.b64decode(url[len(WAV_PREFIX) :]))) as wav:
        params = wav.getparams()
        frames = wav.readframes(params.nframes)
    return params, np.frombuffer(frames, dtype="<i2")


def speak(http, **body):
    response = http.post("/text-to-speech", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"audio"} and set(answer["audio"]) == {"url"}
    assert isinstance(answer["audio"]["url"], str)
    return read_wav(answer["audio"]["url"])


# --- answers -------------------------------------------------------------------------------


def test_speech_is_a_mono_16_bit_wav_at_the_models_sampling_rate(http):
    for model_id, rate in (("test/vits", 16_000), ("test/vits-22k", 22_050)):
        params, samples = speak(http, text="Hello world.", model_id=model_id)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, rate)
        assert params.comptype == "NONE"
        assert samples.size == params.nframes > 0
        assert np.abs(samples).max() > 0  # not silence


def test_the_default_model_answers_an_empty_model_id(http):
    params, _ = speak(http, text="hi", model_id="")
    assert params.framerate == 16_000


def test_longer_text_is_longer_speech(http):
    _, short = speak(http, text="a")
    _, long = speak(http, text="the quick brown fox jumps over the lazy")
    assert long.size > short.size


def test_description_is_accepted_and_does_not_change_the_voice(http):
    # VITS takes no voice prompt: any description (or the spec's default) is served alike.
    for description in ("A female speaker with a high pitch.", "", "x" * 5000):
        params, samples = speak(http, text="hello there", description=description)
        assert params.framerate == 16_000 and samples.size > 0


def test_case_and_characters_outside_the_alphabet_are_dropped_not_refused(http):
    params, samples = speak(http, text="HELLO, World! 42")
    assert params.framerate == 16_000 and samples.size > 0


def test_units_are_1000_per_character_as_go_livepeer_debits(http):
    before = units(http)
    speak(http, text="héllo wörld")  # 11 code points
    assert units(http) - before == 11_000


def units(http) -> float:
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "runner_units_total" and sample.labels == {
                "pipeline": "text-to-speech",
                "model": "test/vits",
            }:
                return float(sample.value)
    return 0.0


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{"text": ""}, {"text": "   \n"}, {}, {"description": "x"}])
def test_an_empty_text_gets_the_runners_400(http, body):
    response = http.post("/text-to-speech", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": {"msg": "Text input must be provided."}}


def test_text_over_the_limit_gets_400_naming_it_and_at_the_limit_is_served(http):
    response = http.post("/text-to-speech", json={"text": "a" * (MAX_CHARS + 1)})
    assert response.status_code == 400
    assert response.json() == {
        "detail": {
            "msg": f"The text is {MAX_CHARS + 1} characters, over the limit "
            f"ADAPTER_MAX_TTS_CHARS={MAX_CHARS}."
        }
    }
    # Characters are code points, as go-livepeer counts them: 40 of them pass.
    speak(http, text="é" * (MAX_CHARS - 1) + "a")


def test_text_with_nothing_the_model_can_speak_gets_400(http):
    response = http.post("/text-to-speech", json={"text": "日本語!?"})
    assert response.status_code == 400
    msg = response.json()["detail"]["msg"]
    assert msg.startswith("The text has no character this model can speak (its alphabet: ")
    assert " a b c " in msg


def test_a_lone_surrogate_gets_400_naming_the_field(http):
    body = b'{"text": "hi \\ud800 there"}'
    response = http.post(
        "/text-to-speech", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("text is not valid text")


@pytest.mark.parametrize("body", [{"text": 5}, {"text": ["a"]}, {"text": "a", "description": 1}])
def test_wrong_types_are_fastapis_422(http, body):
    response = http.post("/text-to-speech", json=body)
    assert response.status_code == 422
    assert_contract_error(response, "/text-to-speech")


def test_an_unknown_model_gets_400(http):
    response = http.post("/text-to-speech", json={"text": "hi", "model_id": PARLER})
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith(f"Model {PARLER} is not served")


def test_the_401_is_the_runners_with_its_final_period(base_url):
    for auth in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{base_url}/text-to-speech", json={"text": "hi"}, headers=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": {"msg": "Invalid bearer token."}}


def test_every_refusal_is_a_declared_status_with_the_contract_body(http):
    for body in ({"text": ""}, {"text": "a" * 100}, {"text": "!!!"}, {"text": None}):
        assert_contract_error(http.post("/text-to-speech", json=body), "/text-to-speech")


# --- Parler-TTS ----------------------------------------------------------------------------


def test_a_parler_model_is_refused_at_start_saying_why(tmp_path):
    models = merge_entries(parse_entries([{"pipeline": "text-to-speech", "model_id": PARLER}]))
    with pytest.raises(ConfigError) as refused:
        create_app(make_settings(tmp_path), models)
    msg = str(refused.value)
    assert "field 'model_id'" in msg and PARLER_REFUSAL in msg
    assert "transformers 4.46.1" in msg and "http backend" in msg


def test_a_parler_model_is_still_forwarded_by_the_http_backend(tmp_path):
    entry = {
        "pipeline": "text-to-speech",
        "model_id": PARLER,
        "runner": {"upstream_url": "http://127.0.0.1:9"},
    }
    app = create_app(make_settings(tmp_path, backend="http"), merge_entries(parse_entries([entry])))
    assert app.state.service.models[0].model_id == PARLER


def test_a_folder_holding_a_parler_model_is_refused_at_load(tmp_path):
    folder = tmp_path / "parler"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "parler_tts"}))
    with pytest.raises(ValueError, match="holds a Parler-TTS model") as refused:
        TextToSpeech.load(folder, device=torch.device("cpu"), dtype=torch.float32)
    assert PARLER_REFUSAL in str(refused.value)


def test_a_parler_folder_in_an_entry_puts_health_in_error_and_requests_get_500(tmp_path):
    folder = tmp_path / "parler"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "parler_tts"}))
    app = make_app(tmp_path, [model_entry("text-to-speech", folder, "mine/voice")])
    with running_client(app) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        response = client.post("/text-to-speech", json={"text": "hi"})
        assert response.status_code == 500
        assert_contract_error(response, "/text-to-speech")
        assert PARLER_REFUSAL in response.json()["detail"]["msg"]


def test_a_folder_that_holds_no_vits_model_is_refused_at_load(tmp_path):
    folder = build_tiny_blip(tmp_path / "blip")
    with pytest.raises(ValueError, match="text-to-speech serves VITS models"):
        TextToSpeech.load(folder, device=torch.device("cpu"), dtype=torch.float32)


def test_a_vits_model_that_phonemizes_is_refused_at_load_without_phonemizer(tmp_path):
    folder = build_tiny_vits(tmp_path / "vits-phonemes")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["phonemize"] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="needs the phonemizer package and espeak-ng"):
        TextToSpeech.load(folder, device=torch.device("cpu"), dtype=torch.float32)


# --- the model and the WAV -----------------------------------------------------------------


def test_a_gone_client_stops_the_speech_within_its_forward_pass(models):
    speech = TextToSpeech.load(models["16k"], device=torch.device("cpu"), dtype=torch.float32)
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) > 3

    with pytest.raises(GenerationCancelled):
        speech.speak("hello world", should_stop=should_stop)
    assert len(asked) == 4  # stopped before the fourth layer ran


def test_wav_encoding_is_16_bit_pcm_of_the_samples_clipped_to_full_scale():
    rate = 8_000
    t = np.arange(rate // 10) / rate
    samples = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    samples[:3] = [2.0, -2.0, 0.0]
    with wave.open(io.BytesIO(encode_wav(samples, rate))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, rate)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.size == samples.size
    assert pcm[:3].tolist() == [32767, -32767, 0]
    assert np.abs(pcm[3:] / 32767 - samples[3:]).max() <= 1 / 32767
    with pytest.raises(ValueError, match="mono"):
        encode_wav(np.zeros((2, 10), dtype=np.float32), rate)
