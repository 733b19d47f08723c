"""Each pipeline's `check_inputs`: plain Python, importable without torch, refusing what its
model cannot take with an InputError that names the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contract.errors import InputError
from functions import (
    audio_to_text,
    image_to_image,
    image_to_video,
    inputs,
    llm,
    text_to_image,
    upscale,
)

PIPELINE_MODULES = [text_to_image, image_to_image, image_to_video, upscale, llm, audio_to_text]


def test_the_pipeline_modules_import_without_torch():
    # The adapter checks requests with them before any model, on a machine that may never
    # load one (the http and Modal backends): importing them must not cost a torch import.
    names = ", ".join(module.__name__ for module in PIPELINE_MODULES)
    code = (
        f"import sys, {names}\n"
        "heavy = sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("module", PIPELINE_MODULES, ids=lambda m: m.__name__)
def test_every_pipeline_module_has_check_inputs(module):
    assert callable(module.check_inputs)


def refused(check, **arguments) -> str:
    with pytest.raises(InputError) as error:
        check(**arguments)
    return str(error.value)


# --- text that no tokenizer takes ------------------------------------------------------------


@pytest.mark.parametrize("text", ["\ud800", "a lone \udfff low surrogate", "ok \ud83d"])
def test_text_that_is_not_utf8_encodable_is_refused_naming_the_field(text):
    message = refused(inputs.check_text, field="negative_prompt", text=text)
    assert message.startswith("negative_prompt is not valid text: it holds a lone UTF-16 surrogate")


def test_text_with_any_real_character_is_accepted():
    inputs.check_text("prompt", "a \U0001f600, a NUL \x00, a non-character \uffff and \u00e9")


# --- text-to-image ---------------------------------------------------------------------------

T2I = {"prompt": "a fox", "width": 64, "height": 48}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "  "}, "Prompt must be provided."),
        ({"prompt": "\ud800"}, "prompt is not valid text"),
        ({"negative_prompt": "x\ud800"}, "negative_prompt is not valid text"),
        ({"width": 8, "height": 8}, "width and height must be at least 16, got 8x8."),
        ({"width": 64, "height": 0}, "width and height must be at least 16, got 64x0."),
        ({"width": 60}, "width and height must be multiples of 8, got 60x48."),
        ({"num_images": 0}, "num_images_per_prompt must be at least 1, got 0."),
        ({"seed": -1}, "seed must be between 0 and"),
    ],
)
def test_text_to_image_refusals(fields, message):
    assert message in refused(text_to_image.check_inputs, **{**T2I, **fields})


def test_text_to_image_accepts_the_smallest_size():
    text_to_image.check_inputs(**{**T2I, "width": 16, "height": 16})


# --- image-to-image, upscale, image-to-video: the input image's size -------------------------


@pytest.mark.parametrize(
    ("check", "arguments"),
    [
        (image_to_image.check_inputs, {"prompt": "x"}),
        (upscale.check_inputs, {"prompt": "x"}),
        (image_to_video.check_inputs, {"width": 64, "height": 48}),
    ],
    ids=["image-to-image", "upscale", "image-to-video"],
)
def test_an_input_image_under_the_minimum_is_refused_naming_it(check, arguments):
    for size in ((1, 1), (15, 64), (64, 15)):
        message = refused(check, image_size=size, **arguments)
        assert message == f"The image must be at least 16x16 pixels, got {size[0]}x{size[1]}."
    check(image_size=(16, 16), **arguments)


def test_image_to_image_refusals():
    base = {"prompt": "x", "image_size": (64, 48)}
    check = image_to_image.check_inputs
    assert refused(check, **base, strength=1.5) == "strength must be between 0 and 1, got 1.5."
    assert "prompt is not valid text" in refused(check, **{**base, "prompt": "\ud800"})
    assert "num_images_per_prompt must be at least 1" in refused(check, **base, num_images=0)


def test_image_to_video_refusals():
    base = {"image_size": (64, 48), "width": 64, "height": 48}
    check = image_to_video.check_inputs
    assert refused(check, **{**base, "height": 8}) == (
        "width and height must be at least 16, got 64x8."
    )
    assert refused(check, **{**base, "width": 68}) == (
        "width and height must be multiples of 8, got 68x48."
    )
    assert refused(check, **base, fps=0) == "fps must be at least 1, got 0."
    assert refused(check, **base, motion_bucket_id=-1) == (
        "motion_bucket_id must not be negative, got -1."
    )
    assert refused(check, **base, noise_aug_strength=-0.5) == (
        "noise_aug_strength must not be negative, got -0.5."
    )


# --- llm ---------------------------------------------------------------------------------------


def test_llm_refusals():
    user = {"role": "user", "content": "hi"}
    sampling = llm.Sampling()
    check = llm.check_inputs
    assert refused(check, messages=[], sampling=sampling) == "messages must not be empty."
    assert refused(
        check, messages=[user, {"role": "robot", "content": "x"}], sampling=sampling
    ).startswith("messages[1].role must be one of")
    surrogate = [user, {"role": "assistant", "content": "bad \ud800"}]
    assert refused(check, messages=surrogate, sampling=sampling).startswith(
        "messages[1].content is not valid text"
    )
    assert "temperature" in refused(check, messages=[user], sampling=llm.Sampling(temperature=3))
    assert "top_p" in refused(check, messages=[user], sampling=llm.Sampling(top_p=-1))
    assert "top_k" in refused(check, messages=[user], sampling=llm.Sampling(top_k=-2))
    assert "max_tokens" in refused(check, messages=[user], sampling=llm.Sampling(max_tokens=0))
    check(messages=[user], sampling=sampling)


# --- audio-to-text -------------------------------------------------------------------------------


def test_audio_word_timestamps_are_bounded():
    words = audio_to_text.Timestamps.WORD
    audio_to_text.check_inputs(seconds=3600, timestamps=words)
    assert refused(audio_to_text.check_inputs, seconds=3601, timestamps=words).startswith(
        "Word timestamps are only supported for audio up to 3600 s"
    )
    audio_to_text.check_inputs(seconds=7200, timestamps=audio_to_text.Timestamps.SENTENCE)
