"""Text to speech with VITS (transformers' VitsModel: Meta's MMS-TTS, `facebook/mms-tts-eng`
and its 1100 languages, or any VITS checkpoint in transformers' layout).

Livepeer's runner serves Parler-TTS (`parler-tts/parler-tts-large-v1`) through the `parler_tts`
package. Its last release (0.2.3) requires transformers 4.46.1 exactly and does not import
beside transformers 5 (it needs `transformers.pytorch_utils.isin_mps_friendly` and
`GenerationMixin._get_logits_warper`, both gone), so a Parler model is refused with a message
that says so (`PARLER_REFUSAL`), at start where the model id names it and at load where the
folder holds one. VITS is transformers-native: one forward pass (no autoregressive loop), so its
cost grows with the text's length, which the adapter bounds.

VITS takes no voice prompt: the request's `description` is checked as text and otherwise has no
effect; the voice is the checkpoint's. Its sampled noise (duration and prior) is drawn from
torch's generator, so two requests for the same text differ slightly, as the runner's sampled
Parler speech does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import raise_if_asked, stop_inside
from functions.inputs import check_text, inference_mode

if TYPE_CHECKING:
    import numpy as np
    import torch

    from functions.cancel import StopCheck

VITS_MODEL_TYPE = "vits"
PARLER_MODEL_TYPE = "parler_tts"
PARLER_REFUSAL = (
    "Parler-TTS models cannot be served here: the parler_tts package (0.2.3, its latest "
    "release) requires transformers 4.46.1 and does not import with this service's "
    "transformers 5; serve a VITS model (facebook/mms-tts-eng) or forward Parler-TTS to "
    "Livepeer's runner with the http backend"
)


def is_parler_model_id(model_id: str) -> bool:
    """Whether a model id names a Parler-TTS checkpoint (`parler-tts/parler-tts-large-v1`, a
    fine-tune with 'parler' in its name)."""
    return "parler" in model_id.lower()


def check_inputs(*, text: str, description: str) -> None:
    """Refuse what `TextToSpeech.speak` cannot serve (InputError). Plain Python: the adapter
    calls it before the request takes any capacity (the length limit is the adapter's)."""
    if not text.strip():
        raise InputError("Text input must be provided.")
    check_text("text", text)
    check_text("description", description)


def model_type(folder: Path) -> str:
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a transformers model")
    return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # float32, mono, in [-1, 1]
    sampling_rate: int

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sampling_rate


@dataclass
class TextToSpeech:
    model: Any  # VitsModel
    tokenizer: Any  # VitsTokenizer
    device: torch.device

    @classmethod
    def load(cls, folder: Path, *, device: torch.device, dtype: torch.dtype) -> TextToSpeech:
        from transformers import AutoTokenizer, VitsModel
        from transformers.utils.import_utils import is_phonemizer_available

        kind = model_type(folder)
        if kind == PARLER_MODEL_TYPE:
            raise ValueError(f"{folder} holds a Parler-TTS model. {PARLER_REFUSAL}")
        if kind != VITS_MODEL_TYPE:
            raise ValueError(
                f"{folder} holds a {kind or 'model of no declared type'!r} model; "
                "text-to-speech serves VITS models (VitsModel, e.g. facebook/mms-tts-eng)"
            )
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if getattr(tokenizer, "phonemize", False) and not is_phonemizer_available():
            # VITS checkpoints trained on phonemes (kakao-enterprise/vits-*) need espeak.
            raise ValueError(
                f"{folder} holds a VITS model whose tokenizer phonemizes its input, which "
                "needs the phonemizer package and espeak-ng (not installed); MMS-TTS models "
                "(facebook/mms-tts-*) read characters"
            )
        model: Any = VitsModel.from_pretrained(folder, dtype=dtype)
        return cls(model.to(device).eval(), tokenizer, device)

    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    @inference_mode
    def speak(self, text: str, should_stop: StopCheck | None = None) -> Speech:
        """Speech of `text` (as `check_inputs` accepted it) at the model's sampling rate."""
        inputs = self.tokenizer(text, return_tensors="pt")
        if inputs["input_ids"].shape[1] == 0:
            # The tokenizer keeps only its alphabet's characters (mms-tts-eng: a-z, digits,
            # space, ' and -, after lower-casing).
            raise InputError(
                f"The text has no character this model can speak (its alphabet: {self.alphabet()})."
            )
        with stop_inside(self.model, should_stop):
            waveform = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).waveform
        raise_if_asked(should_stop)
        samples = waveform[0].float().clamp(-1.0, 1.0).cpu().numpy()
        return Speech(samples=samples, sampling_rate=self.sampling_rate)

    def alphabet(self) -> str:
        symbols = sorted(s for s in self.tokenizer.get_vocab() if len(s) == 1 and s.isprintable())
        return " ".join("space" if s == " " else s for s in symbols)
