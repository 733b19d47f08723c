"""Audio-to-text glue: AudioToTextForm -> functions.audio_to_text -> TextResponse.

The upload is decoded once on the adapter (off the event loop) to refuse what cannot be served
before it takes a slot: too big (413), not decodable audio (415), too long (400). The model's
side decodes it again from the same bytes, which travel compressed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.limits import the_limit
from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck, off_loop, require_nonempty
from contract.errors import (
    BadRequestError,
    LimitExceededError,
    PayloadTooLargeError,
    UnsupportedMediaError,
)
from contract.pipelines import Pipeline
from contract.schemas import AudioToTextForm, Chunk, RequestModel, TextResponse
from contract.units import RequestFacts

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.audio import DecodedAudio
    from functions.audio_to_text import SpeechToText, Timestamps

logger = logging.getLogger(__name__)

AUDIO_FORMAT_ERROR = "Unsupported audio format or malformed file."
FILE_TOO_LARGE = "File size exceeds limit."


# The runner's values of return_timestamps (any case) -> functions.audio_to_text.Timestamps.
TIMESTAMP_MODES = {
    "true": "sentence",
    "1": "sentence",
    "sentence": "sentence",
    "false": "none",
    "0": "none",
    "word": "word",
}


def parse_return_timestamps(value: str) -> Timestamps:
    from functions.audio_to_text import Timestamps

    mode = TIMESTAMP_MODES.get(value.strip().lower())
    if mode is None:
        raise BadRequestError(
            f"return_timestamps must be 'sentence', 'word', 'true', 'false', '1' or '0', "
            f"got {value!r}."
        )
    return Timestamps(mode)


def parse_metadata(value: str) -> dict[str, Any]:
    try:
        metadata = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"metadata must be a JSON object: {exc.msg}.") from exc
    if not isinstance(metadata, dict):
        raise BadRequestError(f"metadata must be a JSON object, got {type(metadata).__name__}.")
    return metadata


def decode_upload(data: bytes, limits: Limits, keep_samples: bool) -> DecodedAudio:
    """The decoded audio, or the contract's 415 / a 400 naming the duration limit."""
    from functions.audio import AudioDecodeError, AudioTooLongError, decode_audio

    max_seconds = limits.max_audio_seconds

    try:
        return decode_audio(data, max_seconds=max_seconds, keep_samples=keep_samples)
    except AudioDecodeError as exc:
        logger.info("refused an audio upload of %d bytes: %s", len(data), exc)
        raise UnsupportedMediaError(AUDIO_FORMAT_ERROR) from exc
    except AudioTooLongError as exc:
        raise LimitExceededError(
            f"The audio is longer than the limit {the_limit('max_audio_seconds', limits)}."
        ) from exc


@dataclass
class LoadedWhisper:
    speech: SpeechToText
    limits: Limits


class AudioToTextRunner(PipelineRunner):
    pipeline = Pipeline.AUDIO_TO_TEXT

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        from functions.audio import livepeer_seconds
        from functions.audio_to_text import check_inputs

        assert isinstance(request, AudioToTextForm)
        timestamps = parse_return_timestamps(request.return_timestamps)
        parse_metadata(request.metadata)
        if len(request.audio.data) > limits.max_audio_bytes:
            raise PayloadTooLargeError(FILE_TOO_LARGE)
        data = require_nonempty(request.audio.data, "audio")
        audio = await off_loop(decode_upload, data, limits, False)
        check_inputs(seconds=audio.seconds, timestamps=timestamps)
        # Units are counted on the length go-livepeer measures, not the decoded one: they are
        # what the orchestrator debits (none where it cannot measure, so none are counted).
        billed_seconds = await off_loop(livepeer_seconds, data)
        return Prepared(request, RequestFacts(audio_duration_ms=billed_seconds * 1000))

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.text_models import build_tiny_whisper

        build_tiny_whisper(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.audio_to_text import SpeechToText

        return LoadedWhisper(
            speech=SpeechToText.load(folder, device=device, dtype=dtype),
            limits=settings.limits,
        )

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        assert isinstance(handle, LoadedWhisper) and isinstance(request, AudioToTextForm)
        audio = decode_upload(request.audio.data, handle.limits, True)
        result = handle.speech.transcribe(
            audio.samples,
            timestamps=parse_return_timestamps(request.return_timestamps),
            should_stop=should_stop,
        )
        return TextResponse(
            text=result.text,
            chunks=[Chunk(timestamp=[c.start, c.end], text=c.text) for c in result.chunks],
        )
