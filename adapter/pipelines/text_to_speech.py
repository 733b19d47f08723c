"""Text-to-speech glue: TextToSpeechParams -> functions.text_to_speech -> AudioResponse.

The text is checked on the adapter before it takes a slot: empty (the runner's 400), not valid
text, or longer than ADAPTER_MAX_TTS_CHARS characters. The answer is a 16-bit PCM WAV data URL
at the model's sampling rate. Parler-TTS models are refused at start (see
`functions.text_to_speech.PARLER_REFUSAL`); the http backend can still forward them to a runner
that serves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from contract.schemas import AudioResponse, MediaURL, RequestModel, TextToSpeechParams

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.text_to_speech import TextToSpeech


@dataclass
class LoadedSpeech:
    speech: TextToSpeech


class TextToSpeechRunner(PipelineRunner):
    pipeline = Pipeline.TEXT_TO_SPEECH

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.text_to_speech import check_inputs

        assert isinstance(request, TextToSpeechParams)
        check_inputs(text=request.text, description=request.description)
        return Prepared(request)

    def check_model(self, model: ServedModel) -> None:
        from functions.text_to_speech import PARLER_REFUSAL, is_parler_model_id

        # With a model_path the folder decides, at load (a Parler folder is refused there).
        if model.runner.model_path is None and is_parler_model_id(model.model_id):
            raise ConfigError(f"{model.key}: field 'model_id': {PARLER_REFUSAL}")

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.caption_speech import build_tiny_vits

        build_tiny_vits(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        import torch

        from functions.text_to_speech import TextToSpeech

        # VITS is small (MMS-TTS: 36 M parameters) and runs in float32 unless the entry asks
        # for another dtype (runner.torch_dtype).
        if model.runner.torch_dtype == "auto":
            dtype = torch.float32
        return LoadedSpeech(TextToSpeech.load(folder, device=device, dtype=dtype))

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        from functions.audio import wav_data_url

        assert isinstance(handle, LoadedSpeech) and isinstance(request, TextToSpeechParams)
        speech = handle.speech.speak(request.text, should_stop=should_stop)
        return AudioResponse(audio=MediaURL(url=wav_data_url(speech.samples, speech.sampling_rate)))
