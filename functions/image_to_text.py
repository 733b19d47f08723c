"""Image captioning with BLIP (transformers' BlipForConditionalGeneration and BlipProcessor).

As in Livepeer's runner: the image and the prompt go through the model's processor, `generate`
decodes greedily (the model's own generation settings), and the answer is the decoded sequence
without special tokens. With a prompt the caption continues it (conditional captioning), and the
answer starts with the prompt's words as BLIP's tokenizer writes them (lower case); without one
the model captions from its start token alone. Unlike the runner, the caption's length is
bounded by the caller (`max_new_tokens`), not by transformers' default of 20 tokens in all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import GenerationCancelled, stop_when_asked
from functions.inputs import check_image_size, check_text, inference_mode

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from functions.cancel import StopCheck

BLIP_MODEL_TYPE = "blip"


def check_inputs(*, prompt: str, image_size: tuple[int, int]) -> None:
    """Refuse what `ImageCaptioner.caption` cannot serve (InputError). Plain Python: the adapter
    calls it once it has decoded the upload, before the request takes any capacity."""
    check_text("prompt", prompt)
    check_image_size(image_size)


def model_type(folder: Path) -> str:
    """The `model_type` a transformers folder's config.json declares ('' when it has none)."""
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a transformers model")
    value = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
    return str(value)


@dataclass
class ImageCaptioner:
    model: Any  # BlipForConditionalGeneration
    processor: Any  # BlipProcessor
    device: torch.device
    dtype: torch.dtype
    max_new_tokens: int

    @classmethod
    def load(
        cls, folder: Path, *, device: torch.device, dtype: torch.dtype, max_new_tokens: int
    ) -> ImageCaptioner:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        kind = model_type(folder)
        if kind != BLIP_MODEL_TYPE:
            raise ValueError(
                f"{folder} holds a {kind or 'model of no declared type'!r} model; image-to-text "
                "serves BLIP captioning models (BlipForConditionalGeneration)"
            )
        model: Any = BlipForConditionalGeneration.from_pretrained(folder, dtype=dtype)
        processor = BlipProcessor.from_pretrained(folder)
        return cls(model.to(device).eval(), processor, device, dtype, max_new_tokens)

    @property
    def max_positions(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @inference_mode
    def caption(self, image: Image.Image, prompt: str, should_stop: StopCheck | None = None) -> str:
        """The caption of an RGB image, continuing `prompt` when it is not empty."""
        inputs = self.processor(images=image, text=prompt or None, return_tensors="pt")
        # The prompt's tokens ([CLS] ... [SEP]; the model drops the [SEP]) and the new ones
        # must fit the text decoder's positions.
        prompt_tokens = int(inputs["input_ids"].shape[1]) - 1 if "input_ids" in inputs else 1
        room = self.max_positions - prompt_tokens
        if room < 1:
            raise InputError(
                f"The prompt is {prompt_tokens} tokens; this model reads at most "
                f"{self.max_positions - 1}."
            )
        tensors = {
            name: value.to(device=self.device, dtype=self.dtype)
            if value.is_floating_point()
            else value.to(device=self.device)
            for name, value in inputs.items()
        }
        max_new_tokens = min(self.max_new_tokens, room)
        output = self.model.generate(
            **tensors,
            max_new_tokens=max_new_tokens,
            stopping_criteria=stop_when_asked(
                should_stop, prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens
            ),
        )
        if should_stop is not None and should_stop():
            raise GenerationCancelled()
        text: str = self.processor.decode(output[0], skip_special_tokens=True)
        return text
