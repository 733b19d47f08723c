"""The built-in demo (no aiModels.json): one tiny model per pipeline, built on first start, and
every pipeline answering from it."""

from __future__ import annotations

from adapter.app import create_app
from adapter.settings import DEMO_LLM_ID, DEMO_VITS_ID, DEMO_WHISPER_ID
from tests.support.apps import make_settings, running_client
from tests.support.audio import livepeer_form, wav
from tests.support.images import decode
from tests.support.livepeer_multipart import png_bytes, post_image


def test_the_demo_serves_every_pipeline_with_models_it_builds(tmp_path):
    settings = make_settings(tmp_path)
    assert settings.models_config is None
    with running_client(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "OK"}

        response = client.post("/text-to-image", json={"prompt": "x", "width": 64, "height": 48})
        assert response.status_code == 200, response.text
        assert decode(response.json()["images"][0]["url"]).size == (64, 48)

        response = post_image(client, "/image-to-image", png_bytes(), prompt="x", seed=1)
        assert response.status_code == 200, response.text
        assert decode(response.json()["images"][0]["url"]).size == (64, 48)

        response = post_image(client, "/image-to-video", png_bytes(), height=48, width=64)
        assert response.status_code == 200, response.text
        assert [len(video) for video in response.json()["frames"]] == [3]

        response = post_image(client, "/upscale", png_bytes(), prompt="x")
        assert response.status_code == 200, response.text
        assert decode(response.json()["images"][0]["url"]).size == (256, 192)

        answer = client.post(
            "/llm", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == DEMO_LLM_ID

        body, headers = livepeer_form(wav(1.0), "hello.wav", model_id=DEMO_WHISPER_ID)
        transcript = client.post("/audio-to-text", content=body, headers=headers)
        assert transcript.status_code == 200, transcript.text

        response = post_image(
            client, "/segment-anything-2", png_bytes(), point_coords="[[8, 8]]", point_labels="[1]"
        )
        assert response.status_code == 200, response.text
        assert response.json()["scores"].count(",") == 2  # three masks

        caption = post_image(client, "/image-to-text", png_bytes(), prompt="a photo of")
        assert caption.status_code == 200, caption.text
        assert caption.json()["text"].startswith("a photo of")
        speech = client.post("/text-to-speech", json={"text": "hello", "model_id": DEMO_VITS_ID})
        assert speech.status_code == 200, speech.text
        assert speech.json()["audio"]["url"].startswith("data:audio/wav;base64,")

        video = client.post(
            "/text-to-video", json={"prompt": "x", "width": 48, "height": 32, "num_frames": 5}
        )
        assert video.status_code == 200, video.text
        assert video.json()["video"]["url"].startswith("data:video/mp4;base64,")
        assert (video.json()["num_frames"], video.json()["width"]) == (5, 48)

    built = sorted(path.name for path in settings.demo_dir.iterdir())
    assert built == [
        "tiny-blip",
        "tiny-llm",
        "tiny-sam2",
        "tiny-sd",
        "tiny-sd-x4-upscaler",
        "tiny-svd",
        "tiny-vits",
        "tiny-wan",
        "tiny-whisper",
    ]
