"""A pipeline's response as a job's output files (PNG, MP4, WAV, JSON) and its result summary.

The runner contract answers with data URLs (images, frames, audio) and JSON (text, chat); a job
keeps each medium as a file of its own type in the output store, so the page and `curl -O` get a
playable file, and a summary (seeds, nsfw flags, text) for the job's JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
from typing import Any

from pydantic import BaseModel

from adapter.jobs.model import OutputFile
from adapter.jobs.outputs.base import OutputStore
from contract.errors import InferenceError
from contract.schemas import (
    AudioResponse,
    ImageResponse,
    LLMResponse,
    Media,
    TextResponse,
    VideoResponse,
)

# Output types by file extension (what the download routes answer with).
CONTENT_TYPES = {
    "png": "image/png",
    "mp4": "video/mp4",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "json": "application/json",
}


def output_key(job_id: str, name: str) -> str:
    return f"jobs/{job_id}/{name}"


def input_key(job_id: str, field: str) -> str:
    """Where an upload of a job is kept (before its row commits, so a restart still has it)."""
    return f"inputs/{job_id}/{field}"


def job_prefixes(job_id: str) -> tuple[str, str]:
    """Every key of a job starts with one of these (purged together)."""
    return f"jobs/{job_id}/", f"inputs/{job_id}/"


def data_url_bytes(url: str) -> tuple[bytes, str]:
    """The bytes and media type of a `data:<type>;base64,...` URL."""
    head, sep, payload = url.partition(",")
    if not (sep and head.startswith("data:") and head.endswith(";base64")):
        raise InferenceError("The pipeline returned media that is not a base64 data URL.")
    try:
        return base64.b64decode(payload, validate=True), head[5:-7]
    except binascii.Error as exc:
        raise InferenceError("The pipeline returned a data URL that is not base64.") from exc


def _extension(media_type: str) -> str:
    for ext, known in CONTENT_TYPES.items():
        if known == media_type:
            return ext
    return {"audio/x-wav": "wav", "audio/wave": "wav"}.get(media_type, "bin")


def _json_file(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


def frames_mp4(frames: list[Media], fps: int) -> bytes:
    """An H.264 MP4 of image-to-video's frames (PNG data URLs)."""
    from PIL import Image

    from functions.video import encode_mp4

    images = [
        Image.open(io.BytesIO(data_url_bytes(frame.url)[0])).convert("RGB") for frame in frames
    ]
    return encode_mp4(images, fps)


def response_files(
    response: BaseModel, params: dict[str, Any]
) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """(file name, bytes) of each output, and the result summary. Blocking: call off the loop."""
    if isinstance(response, ImageResponse):
        files = [
            (f"image-{i}.png", data_url_bytes(image.url)[0])
            for i, image in enumerate(response.images)
        ]
        return files, _media_summary(response.images)
    if isinstance(response, VideoResponse):
        fps = int(params.get("fps") or 6)
        files = [
            (f"video-{i}.mp4", frames_mp4(video, fps)) for i, video in enumerate(response.frames)
        ]
        return files, _media_summary([video[0] for video in response.frames if video])
    if isinstance(response, AudioResponse):
        data, media_type = data_url_bytes(response.audio.url)
        return [(f"audio.{_extension(media_type)}", data)], {}
    if isinstance(response, TextResponse):
        summary = {"text": response.text}
        return [("transcript.json", _json_file(response.model_dump(mode="json")))], summary
    if isinstance(response, LLMResponse):
        choice = response.choices[0] if response.choices else None
        message = choice.message if choice is not None else None
        summary = {"text": message.content if message is not None else ""}
        return [("response.json", _json_file(response.model_dump(mode="json")))], summary
    video = _video_file(response)
    if video is not None:
        return video
    text = getattr(response, "text", None)  # image-to-text's caption
    summary = {"text": text} if isinstance(text, str) else {}
    return [("response.json", _json_file(response.model_dump(mode="json")))], summary


def _video_file(response: BaseModel) -> tuple[list[tuple[str, bytes]], dict[str, Any]] | None:
    """A response that carries one finished video as a data URL (text-to-video's)."""
    video = getattr(response, "video", None)
    url = getattr(video, "url", None)
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    data, media_type = data_url_bytes(url)
    summary: dict[str, Any] = {}
    for key in ("seed", "nsfw"):
        value = getattr(video, key, getattr(response, key, None))
        if value is not None:
            summary[key] = value
    return [(f"video.{_extension(media_type)}", data)], summary


def _media_summary(media: list[Media]) -> dict[str, Any]:
    if not media:
        return {}
    return {
        "seed": media[0].seed,
        "seeds": [item.seed for item in media],
        "nsfw": any(item.nsfw for item in media),
    }


async def store_outputs(
    outputs: OutputStore, job_id: str, response: BaseModel, params: dict[str, Any]
) -> tuple[tuple[OutputFile, ...], dict[str, Any]]:
    """Write the response's files into the output store; their descriptions and the summary."""
    files, summary = await asyncio.to_thread(response_files, response, params)
    stored = []
    for name, data in files:
        content_type = CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
        await outputs.put(output_key(job_id, name), data, content_type)
        stored.append(OutputFile(name=name, content_type=content_type, size=len(data)))
    return tuple(stored), summary
