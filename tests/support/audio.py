"""Real audio files made in code: a tone encoded to WAV (stdlib) or with PyAV's encoders."""

from __future__ import annotations

import io
import wave

import av
import numpy as np

from tests.support.livepeer_multipart import go_multipart

# (container, audio codec, sample rate): Opus only takes 48 kHz.
FORMATS = {
    "mp3": ("mp3", "libmp3lame", 44_100),
    "flac": ("flac", "flac", 44_100),
    "ogg": ("ogg", "libopus", 48_000),
    "m4a": ("ipod", "aac", 44_100),
    "aac": ("adts", "aac", 44_100),  # raw ADTS AAC: no duration field
    "mp4": ("mp4", "aac", 44_100),
    "webm": ("webm", "libopus", 48_000),
}
VIDEO_CODECS = {"mp4": "mpeg4", "webm": "libvpx"}


def tone(seconds: float, rate: int = 16_000, freq: float = 440.0) -> np.ndarray:
    """A sine tone with a little noise, float32 in [-1, 1]."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.02
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def wav(seconds: float, rate: int = 22_050, channels: int = 1) -> bytes:
    samples = (tone(seconds, rate) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, channels).tobytes())
    return buffer.getvalue()


def encoded(kind: str, seconds: float, with_video: bool = False) -> bytes:
    """A stereo tone in one of FORMATS; MP4 and WebM can carry a small video track too."""
    container_format, codec, rate = FORMATS[kind]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        video = None
        if with_video:
            video = container.add_stream(VIDEO_CODECS[kind], rate=10)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout="stereo")
        if video is not None:
            for index in range(int(seconds * 10)):
                image = np.full((48, 64, 3), index * 10 % 256, dtype=np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
        _encode_audio(container, audio, np.stack([tone(seconds, rate)] * 2), rate)
    return buffer.getvalue()


def _encode_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, rate: int
) -> None:
    sample_format = stream.codec_context.codec.audio_formats[0].name
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.shape[1], frame_size):
        block = samples[:, start : start + frame_size]
        # Planar formats take one row per channel; packed ones interleave them in one row.
        data = block if sample_format.endswith("p") else block.T.reshape(1, -1)
        if sample_format.startswith("s16"):
            data = (data * 32767).astype(np.int16)
        elif sample_format.startswith("s32"):
            data = (data * (2**31 - 1)).astype(np.int32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data), format=sample_format, layout="stereo"
        )
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def livepeer_form(
    data: bytes, filename: str = "audio.bin", **fields: str
) -> tuple[bytes, dict[str, str]]:
    """A multipart body as go-livepeer writes it, with the audio as the file part."""
    return go_multipart(data, filename, field="audio", **fields)
