"""Decoding uploaded audio (any container FFmpeg reads: WAV, MP3, FLAC, OGG, MP4, WebM...)
to the 16 kHz mono float32 samples speech models take.

PyAV bundles FFmpeg's libraries in its wheel, so nothing outside Python is needed. The format is
found from the bytes, never from a file name. Decoding stops as soon as the audio runs past
`max_seconds`, so a small file that expands to hours of audio costs no more than the limit.
Text-to-speech's answers go the other way: float samples to a 16-bit PCM WAV data URL.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000

# The demuxers FFmpeg may pick. Others (playlists, concat lists, image sequences, raw streams)
# are refused: some of them open further files or URLs named inside the upload.
AUDIO_DEMUXERS = (
    "wav,w64,mp3,flac,ogg,aac,aiff,caf,amr,au,asf,"
    "mov,mp4,m4a,3gp,3g2,mj2,"  # one demuxer: MP4 and its family
    "matroska,webm"  # one demuxer: Matroska and WebM
)


# lpms estimates the length of these from the file's size and bitrate when FFmpeg gives none.
BITRATE_FORMATS = frozenset({"mp3", "wav", "aac"})
MICROSECONDS = 1_000_000  # FFmpeg's AV_TIME_BASE


class AudioDecodeError(ValueError):
    """The bytes hold no audio that can be decoded (unknown format, corrupt, no audio track)."""


class AudioTooLongError(ValueError):
    """The audio lasts longer than allowed."""

    def __init__(self, max_seconds: float) -> None:
        super().__init__(f"the audio is longer than {max_seconds:g} s")
        self.max_seconds = max_seconds


@dataclass
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE; empty when decoded only to measure
    seconds: float


def decode_audio(data: bytes, *, max_seconds: float, keep_samples: bool = True) -> DecodedAudio:
    """Decode the first audio track of `data`, resampled to 16 kHz mono float32.

    With `keep_samples=False` the samples are counted and dropped: checking a file this way
    takes memory for one frame, not for the whole audio.
    """
    import av

    max_samples = int(max_seconds * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    count = 0
    try:
        with av.open(
            io.BytesIO(data),
            mode="r",
            options={"format_whitelist": AUDIO_DEMUXERS},
            metadata_errors="ignore",
        ) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioDecodeError("the file has no audio track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

            def take(frames: list[av.AudioFrame]) -> None:
                nonlocal count
                for frame in frames:
                    samples = frame.to_ndarray().reshape(-1)
                    count += samples.size
                    if count > max_samples:
                        raise AudioTooLongError(max_seconds)
                    if keep_samples:
                        parts.append(samples)

            # Only the audio track's packets are read: a video track is never decoded.
            for packet in container.demux(stream):
                for frame in packet.decode():
                    assert isinstance(frame, av.AudioFrame)  # only an audio track is demuxed
                    take(resampler.resample(frame))
            take(resampler.resample(None))
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"the audio cannot be decoded: {exc.strerror or exc}") from exc
    if count == 0:
        raise AudioDecodeError("the file holds no audio samples")
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return DecodedAudio(samples=samples.astype(np.float32, copy=False), seconds=count / SAMPLE_RATE)


class _Pipe(io.BytesIO):
    """The upload as go-livepeer hands it to FFmpeg: through a pipe, which cannot seek, so FFmpeg
    reads neither the file's end nor its size (which is why Ogg has no length there)."""

    def seekable(self) -> bool:
        return False


def livepeer_seconds(data: bytes) -> int:
    """The whole seconds go-livepeer's orchestrator bills an audio upload for; 0 when it cannot
    measure it (it then refuses the request: "Unable to calculate duration").

    As lpms `GetCodecInfoBytes` (ffmpeg/ffmpeg.go, ffmpeg/extras.c): the container's duration
    from FFmpeg reading a pipe, truncated to whole seconds; when that is 0 for MP3, WAV or ADTS
    AAC, bytes x 8 / the audio stream's bitrate, tags and cover art included. Not the decoded
    length: a 29.9996 s FLAC is 29 s there, an Ogg file nothing.
    """
    import av

    try:
        with av.open(
            _Pipe(data),
            mode="r",
            options={"format_whitelist": AUDIO_DEMUXERS},
            metadata_errors="ignore",
        ) as container:
            duration = container.duration  # None: AV_NOPTS_VALUE
            name = container.format.name
            audio = next((s for s in container.streams if s.type == "audio"), None)
            bit_rate = audio.codec_context.bit_rate if audio is not None else 0
    except av.FFmpegError:
        return 0  # "Error getting codec info"
    # C's int64 division truncates toward zero.
    seconds = int(duration / MICROSECONDS) if duration is not None else 0
    if seconds == 0 and bit_rate and bit_rate > 0 and name in BITRATE_FORMATS:
        seconds = len(data) * 8 // bit_rate
    return max(seconds, 0)


# --- encoding (text-to-speech answers) -----------------------------------------------------

WAV_SAMPLE_WIDTH = 2  # bytes: 16-bit PCM, as the runner's soundfile writes a WAV by default


def encode_wav(samples: np.ndarray, sampling_rate: int) -> bytes:
    """A mono 16-bit PCM WAV of float samples in [-1, 1] (values beyond are clipped)."""
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono (one dimension), got shape {samples.shape}")
    pcm = np.round(np.clip(samples.astype(np.float32), -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(WAV_SAMPLE_WIDTH)
        out.setframerate(sampling_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def wav_data_url(samples: np.ndarray, sampling_rate: int) -> str:
    """A `data:audio/wav;base64,...` URL, the form the runner's text-to-speech answers take."""
    data = base64.b64encode(encode_wav(samples, sampling_rate)).decode("ascii")
    return "data:audio/wav;base64," + data
