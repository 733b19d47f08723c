"""The built-in demo (no aiModels.json): one tiny model per pipeline, built on first start."""

from __future__ import annotations

from adapter.app import create_app
from adapter.settings import DEMO_LLM_ID, DEMO_WHISPER_ID
from tests.audio import livepeer_form, wav
from tests.conftest import make_settings, running_client


def test_demo_serves_audio_to_text_and_llm_with_models_it_builds(tmp_path):
    settings = make_settings(tmp_path)
    assert settings.models_config is None
    with running_client(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "OK"}
        answer = client.post(
            "/llm", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == DEMO_LLM_ID
        body, headers = livepeer_form(wav(1.0), "hello.wav", model_id=DEMO_WHISPER_ID)
        transcript = client.post("/audio-to-text", content=body, headers=headers)
        assert transcript.status_code == 200, transcript.text
    for folder in ("tiny-whisper", "tiny-llm"):
        assert (settings.demo_dir / folder / "config.json").is_file()
