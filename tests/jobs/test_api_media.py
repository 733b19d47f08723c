"""Jobs of the other media: audio-to-text (a WAV upload, a JSON transcript), llm (a JSON answer),
image-to-video and text-to-video (H.264 MP4s that play from a range)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pytest

from tests.support.apps import llm_entry, model_entry, running_client, whisper_entry
from tests.support.jobs_api import jobs_app, wait_for
from tests.support.livepeer_multipart import png_bytes, wav_bytes


@pytest.fixture
def client(tmp_path: Path, tiny_whisper: Path, tiny_llm: Path, tiny_svd: Path, tiny_wan: Path):
    entries = [
        whisper_entry(tiny_whisper),
        llm_entry(tiny_llm),
        model_entry("image-to-video", tiny_svd, "test/svd", runner={"num_frames": 2}),
        model_entry("text-to-video", tiny_wan, "test/wan"),
    ]
    with running_client(jobs_app(tmp_path, entries)) as client:
        yield client


def test_audio_to_text_job_keeps_its_transcript_as_json(client):
    response = client.post(
        "/v1/jobs",
        data={"pipeline": "audio-to-text", "metadata": '{"call": 7}'},
        files={"audio": ("a.wav", wav_bytes(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    done = wait_for(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["metadata"] == {"call": 7}
    (output,) = done["result"]["outputs"]
    assert (output["name"], output["content_type"]) == ("transcript.json", "application/json")
    transcript = client.get(done["urls"]["result"])
    assert transcript.headers["content-type"] == "application/json"
    assert json.loads(transcript.content)["text"] == done["result"]["data"]["text"]


def test_llm_job_keeps_the_answer(client):
    params = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "temperature": 0,  # greedy: the tiny model runs to max_tokens
        "stream": True,
    }
    response = client.post("/v1/jobs", json={"pipeline": "llm", "params": params})
    assert response.status_code == 202, response.text
    done = wait_for(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    # Each generated token is a step, out of max_tokens.
    assert done["progress"] == {"step": 4, "total": 4, "fraction": 1.0}
    answer = json.loads(client.get(done["urls"]["result"]).content)
    assert answer["choices"][0]["message"]["content"] == done["result"]["data"]["text"]
    assert "stream" not in done["params"]  # a job keeps the whole answer


def test_image_to_video_job_is_an_mp4(client):
    response = client.post(
        "/v1/jobs",
        data={
            "pipeline": "image-to-video",
            "params": json.dumps({"width": 64, "height": 48, "num_inference_steps": 2, "fps": 4}),
        },
        files={"image": ("in.png", png_bytes(64, 48), "image/png")},
    )
    assert response.status_code == 202, response.text
    done = wait_for(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"step": 2, "total": 2, "fraction": 1.0}
    (output,) = done["result"]["outputs"]
    assert output["content_type"] == "video/mp4"
    video = client.get(done["urls"]["result"])
    assert video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 2
    head = client.get(done["urls"]["result"], headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and len(head.content) == 100


def frames_of(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return sum(1 for _ in container.decode(stream))


def test_text_to_video_job_is_its_mp4_and_enhances_with_the_same_seed(client):
    params = {
        "prompt": "waves",
        "width": 32,
        "height": 32,
        "num_frames": 5,
        "num_inference_steps": 2,
    }
    response = client.post("/v1/jobs", json={"pipeline": "text-to-video", "params": params})
    assert response.status_code == 202, response.text
    done = wait_for(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"step": 2, "total": 2, "fraction": 1.0}
    (output,) = done["result"]["outputs"]
    assert output["content_type"] == "video/mp4"
    video = client.get(done["urls"]["result"])
    assert frames_of(video.content) == 5
    seed = done["result"]["data"]["seed"]
    enhanced = client.post(done["urls"]["enhance"]).json()
    assert enhanced["params"]["seed"] == seed
    assert enhanced["params"]["num_inference_steps"] == 50
    assert enhanced["parent_id"] == done["id"]
    client.post(enhanced["urls"]["cancel"])  # 50 steps: not needed here


def test_upscale_job_reports_the_steps_of_its_legacy_callback(tmp_path: Path, tiny_upscaler: Path):
    app = jobs_app(tmp_path, [model_entry("upscale", tiny_upscaler, "test/x4")])
    with running_client(app) as client:
        response = client.post(
            "/v1/jobs",
            data={"pipeline": "upscale", "prompt": "sharp", "num_inference_steps": "3"},
            files={"image": ("in.png", png_bytes(32, 32), "image/png")},
        )
        assert response.status_code == 202, response.text
        done = wait_for(client, response.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"] == {"step": 3, "total": 3, "fraction": 1.0}
        assert client.get(done["urls"]["result"]).headers["content-type"] == "image/png"
