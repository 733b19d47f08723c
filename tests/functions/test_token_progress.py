"""Generated tokens reported as progress (functions/cancel.py's stop_when_asked), on the real
tiny LLM and BLIP captioner: one step per new token, counted from 1, out of the most allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from functions.image_to_text import ImageCaptioner
from functions.llm import ChatModel, Sampling
from functions.tiny.caption_speech import build_tiny_blip

CPU = {"device": torch.device("cpu"), "dtype": torch.float32}


class RecordingStop:
    """A should_stop that never stops and records every (step, total) it hears."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []

    def __call__(self) -> bool:
        return False

    def on_step(self, step: int, total: int) -> None:
        self.steps.append((step, total))


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("models") / "tiny-blip")


def test_each_new_llm_token_is_a_step_of_max_tokens(tiny_llm: Path) -> None:
    model = ChatModel.load(tiny_llm, **CPU)
    stop = RecordingStop()
    ids = model.prompt_ids([{"role": "user", "content": "hi"}])
    # Greedy: the tiny model then runs to max_tokens (it never picks EOS for this prompt).
    done = model.complete(ids, Sampling(max_tokens=6, temperature=0), stop)
    assert done.completion_tokens == 6
    assert stop.steps == [(step, 6) for step in range(1, 7)]


def test_each_caption_token_is_a_step_of_the_caption_limit(tiny_blip: Path) -> None:
    captioner = ImageCaptioner.load(tiny_blip, max_new_tokens=5, **CPU)
    image = Image.new("RGB", (32, 32), (120, 30, 200))
    for prompt in ("", "a photo of"):
        stop = RecordingStop()
        captioner.caption(image, prompt, stop)
        assert stop.steps, prompt
        steps = [step for step, _total in stop.steps]
        assert steps == list(range(1, len(steps) + 1)), (prompt, stop.steps)
        assert {total for _step, total in stop.steps} == {5}, prompt


def test_without_a_listener_nothing_is_reported_and_nothing_breaks(tiny_llm: Path) -> None:
    model = ChatModel.load(tiny_llm, **CPU)
    ids = model.prompt_ids([{"role": "user", "content": "hi"}])
    done = model.complete(ids, Sampling(max_tokens=3, temperature=0), lambda: False)
    assert done.completion_tokens == 3
