"""`/v1/audio/transcriptions` on the audio-to-text models, through the runner service.

The multipart `file` becomes the runner's `audio` upload; `response_format` picks the answer:
`json` (`{"text"}`), `text`, `srt`, `vtt` or `verbose_json` (duration, segments, and words
with `timestamp_granularities[]=word`). One run gives one kind of timestamps: with word
granularity the answer has words and no segments. `language`, `prompt` and `temperature`
are accepted; the runner's Whisper detects the language itself and takes no prompt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapter.openai.chat import openai_errors
from adapter.openai.errors import invalid
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import AudioToTextForm, TextResponse, Upload

if TYPE_CHECKING:
    from adapter.service import RunnerService
    from adapter.settings import Limits

AUDIO_TO_TEXT_SPEC = PIPELINE_SPECS[Pipeline.AUDIO_TO_TEXT]
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")


@dataclass
class TranscriptionRequest:
    data: bytes
    filename: str | None
    content_type: str | None
    model: str = ""
    response_format: str = "json"
    timestamp_granularities: list[str] = field(default_factory=list)
    language: str = ""


def audio_upload(data: bytes, filename: str | None, content_type: str | None) -> Upload:
    """The value of `AudioToTextForm.audio` for an upload's bytes."""
    return Upload(data, filename, content_type)


def check_transcription(request: TranscriptionRequest) -> None:
    if request.response_format not in FORMATS:
        raise invalid(
            f"response_format must be one of {', '.join(FORMATS)}, got "
            f"{request.response_format!r}.",
            "response_format",
        )
    for granularity in request.timestamp_granularities:
        if granularity not in GRANULARITIES:
            raise invalid(
                f"timestamp_granularities takes 'word' and 'segment', got {granularity!r}.",
                "timestamp_granularities",
            )
    if not request.data:
        raise invalid("The uploaded file is empty.", "file")


def return_timestamps(request: TranscriptionRequest) -> str:
    """The runner's `return_timestamps` for what the answer needs."""
    if "word" in request.timestamp_granularities:
        return "word"
    if request.response_format in ("srt", "vtt", "verbose_json"):
        return "sentence"
    return "false"


def _span(chunk_timestamp: list[Any], duration: float | None) -> tuple[float, float]:
    start = float(chunk_timestamp[0] or 0.0) if chunk_timestamp else 0.0
    end_value = chunk_timestamp[1] if len(chunk_timestamp) > 1 else None
    # Whisper leaves the end of a last chunk open when the audio stops mid-sentence.
    end = float(end_value) if end_value is not None else (duration or start)
    return start, end


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def subtitles(result: TextResponse, kind: str) -> str:
    """The transcript as SRT or WebVTT cues, one per chunk."""
    separator = "," if kind == "srt" else "."
    cues = []
    for index, chunk in enumerate(result.chunks, start=1):
        start, end = _span(chunk.timestamp, None)
        timing = f"{_clock(start, separator)} --> {_clock(end, separator)}"
        text = chunk.text.strip()
        cues.append(f"{index}\n{timing}\n{text}\n" if kind == "srt" else f"{timing}\n{text}\n")
    body = "\n".join(cues)
    return f"WEBVTT\n\n{body}" if kind == "vtt" else body


async def audio_seconds(data: bytes, limits: Limits) -> float:
    """The audio's length (the service has decoded it already, so this cannot fail)."""
    from adapter.pipelines.audio_to_text import decode_upload

    audio = await asyncio.to_thread(decode_upload, data, limits, False)
    return float(audio.seconds)


def verbose(result: TextResponse, request: TranscriptionRequest, duration: float) -> dict[str, Any]:
    spans = [(_span(chunk.timestamp, duration), chunk.text) for chunk in result.chunks]
    answer: dict[str, Any] = {
        "task": "transcribe",
        "language": request.language or "unknown",
        "duration": duration,
        "text": result.text,
    }
    if "word" in request.timestamp_granularities:
        answer["words"] = [
            {"word": text.strip(), "start": start, "end": end} for (start, end), text in spans
        ]
    else:
        answer["segments"] = [
            {"id": index, "seek": 0, "start": start, "end": end, "text": text}
            for index, ((start, end), text) in enumerate(spans)
        ]
    return answer


async def transcribe(
    service: RunnerService, request: TranscriptionRequest
) -> tuple[str, dict[str, Any] | str]:
    """(media type, answer) for `request`: a JSON object, or text for text/srt/vtt."""
    check_transcription(request)
    form = AudioToTextForm(
        audio=audio_upload(request.data, request.filename, request.content_type),
        model_id=request.model,
        return_timestamps=return_timestamps(request),
        metadata="{}",
    )
    with openai_errors(model_named=bool(request.model)):
        result = await service.handle(AUDIO_TO_TEXT_SPEC, form)
    assert isinstance(result, TextResponse)
    match request.response_format:
        case "text":
            return "text/plain", result.text
        case "srt" | "vtt":
            return "text/plain", subtitles(result, request.response_format)
        case "verbose_json":
            seconds = await audio_seconds(request.data, service.settings.limits)
            return "application/json", verbose(result, request, seconds)
    return "application/json", {"text": result.text}
