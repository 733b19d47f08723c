"""image-to-text and text-to-speech on Modal: planned from the one pipeline table, run through
their GPU class's own local execution (the same glue as the local backend), and a Parler-TTS
entry refused when the deployment is planned."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave

import pytest
import torch

from adapter.pipelines import PIPELINES
from adapter.pipelines.image_input import prepared_image
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from contract.schemas import ImageToTextForm, TextToSpeechParams, Upload
from functions.text_to_speech import PARLER_REFUSAL
from functions.tiny.caption_speech import build_tiny_blip, build_tiny_vits
from tests.support.apps import make_settings
from tests.support.livepeer_multipart import png_bytes
from tests.support.modal_inprocess import import_modal_app, over_the_wire

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

CAPTIONER = "ImageToText__test_tiny_blip"
SPEAKER = "TextToSpeech__test_tiny_vits"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"blip": build_tiny_blip(root / "blip"), "vits": build_tiny_vits(root / "vits")}


@pytest.fixture(scope="module")
def app(folders, tmp_path_factory):
    entries = [
        {
            "pipeline": "image-to-text",
            "model_id": "test/tiny-blip",
            "warm": True,
            "runner": {"model_path": str(folders["blip"]), "modal": {"gpu": "T4"}},
        },
        {
            "pipeline": "text-to-speech",
            "model_id": "test/tiny-vits",
            "runner": {"model_path": str(folders["vits"]), "modal": {"gpu": "T4"}},
        },
    ]
    path = tmp_path_factory.mktemp("modal") / "aiModels.json"
    path.write_text(json.dumps(entries))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})


def test_both_pipelines_get_a_gpu_class_each(app):
    plans = {plan.name: plan for plan in app.PLAN.classes}
    assert set(plans) == {CAPTIONER, SPEAKER}
    assert plans[CAPTIONER].min_containers == 1  # warm
    assert plans[SPEAKER].min_containers == 0


def test_a_caption_through_the_modal_class_is_the_local_glues(app, define_in_process, folders):
    glue = PIPELINES[Pipeline.IMAGE_TO_TEXT]
    limits = make_settings(folders["blip"]).limits
    prepared = asyncio.run(glue.prepare(ImageToTextForm(image=_upload(), prompt="a"), limits))
    model = define_in_process(app).target(CAPTIONER).obj
    response = asyncio.run(model.run.local(over_the_wire(prepared.request)))
    served = next(p.model for p in app.PLAN.classes if p.name == CAPTIONER)
    settings = make_settings(folders["blip"])
    handle = glue.load(served, folders["blip"], torch.device("cpu"), torch.float32, settings)
    assert response == glue.run(handle, prepared.request, lambda: False)
    assert response.text.startswith("a")
    assert prepared_image(prepared.request.image).size == (64, 48)


def test_speech_through_the_modal_class_is_a_wav_at_the_models_rate(app, define_in_process):
    model = define_in_process(app).target(SPEAKER).obj
    response = asyncio.run(model.run.local(over_the_wire(TextToSpeechParams(text="hello"))))
    url = response.audio.url
    assert url.startswith("data:audio/wav;base64,")
    with wave.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as audio:
        assert (audio.getnchannels(), audio.getframerate()) == (1, 16_000)
        assert audio.getnframes() > 0


def test_a_parler_entry_cannot_be_planned(tmp_path):
    entries = [{"pipeline": "text-to-speech", "model_id": "parler-tts/parler-tts-mini-v1"}]
    path = tmp_path / "aiModels.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ConfigError, match="field 'model_id'") as refused:
        import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})
    assert PARLER_REFUSAL in str(refused.value)


def _upload() -> Upload:
    return Upload(png_bytes(64, 48), "in.png", "application/octet-stream")
