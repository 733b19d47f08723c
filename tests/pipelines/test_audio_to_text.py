"""Audio-to-text over HTTP on a tiny Whisper loaded with from_pretrained, fed real audio files
sent the way go-livepeer sends them."""

from __future__ import annotations

import numpy as np
import pytest

from functions import audio_to_text as speech
from functions.audio import SAMPLE_RATE, AudioTooLongError, decode_audio
from functions.audio_to_text import tidy_chunks
from tests.support.apps import make_app, running_client, whisper_entry
from tests.support.audio import encoded, livepeer_form, png, wav


@pytest.fixture(scope="module")
def client(tiny_whisper, tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("a2t"), [whisper_entry(tiny_whisper)])
    with running_client(app) as c:
        yield c


def transcribe(client, data: bytes, filename: str = "clip.wav", **fields: str):
    body, headers = livepeer_form(data, filename, **fields)
    return client.post("/audio-to-text", content=body, headers=headers)


def assert_chunks_fit(chunks: list[dict], seconds: float) -> None:
    """Each chunk is {timestamp: [start, end], text}; times in order and within the audio."""
    previous_start = 0.0
    for chunk in chunks:
        assert set(chunk) == {"timestamp", "text"}
        start, end = chunk["timestamp"]
        assert isinstance(chunk["text"], str)
        assert 0 <= previous_start <= start <= end <= seconds, chunks
        previous_start = start


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wav", "mp3", "flac", "ogg", "m4a", "mp4", "webm"])
def test_each_format_decodes_to_16khz_mono_with_its_tone(kind):
    data = wav(2.0) if kind == "wav" else encoded(kind, 2.0, with_video=kind in ("mp4", "webm"))
    audio = decode_audio(data, max_seconds=60)
    # AAC encoders pad a few ms of priming; the rest keep the exact length.
    assert audio.seconds == pytest.approx(2.0, abs=0.05)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.samples.size == round(audio.seconds * SAMPLE_RATE)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / audio.samples.size
    assert peak_hz == pytest.approx(440, abs=2)


def test_decoding_stops_at_the_duration_limit_and_can_measure_without_keeping():
    with pytest.raises(AudioTooLongError):
        decode_audio(encoded("flac", 3.0), max_seconds=2.0)
    measured = decode_audio(encoded("flac", 3.0), max_seconds=10, keep_samples=False)
    assert measured.seconds == pytest.approx(3.0, abs=0.01)
    assert measured.samples.size == 0


def test_tidy_chunks_keeps_times_in_order_within_the_audio():
    raw = [
        {"timestamp": (0.5, 24.9), "text": "a"},
        {"timestamp": (29.98, 25.86), "text": "b"},  # steps back, ends past the audio
        {"timestamp": (1.0, None), "text": "c"},  # open end
    ]
    tidy = tidy_chunks(raw, seconds=3.0)
    assert [(c.start, c.end, c.text) for c in tidy] == [
        (0.5, 3.0, "a"),
        (3.0, 3.0, "b"),
        (3.0, 3.0, "c"),
    ]


# --- over HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wav", "mp3", "flac", "mp4", "webm"])
def test_every_format_is_transcribed_over_http(client, kind):
    data = wav(2.0) if kind == "wav" else encoded(kind, 2.0, with_video=kind in ("mp4", "webm"))
    response = transcribe(client, data, f"clip.{kind}", return_timestamps="false")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"text", "chunks"}
    assert isinstance(body["text"], str) and body["text"]
    assert body["chunks"] == []


# Word alignment normalises attention over a window's tokens; random weights leave some window
# without any, and torch warns about that inside transformers.
@pytest.mark.filterwarnings("ignore:std\\(\\).*degrees of freedom:UserWarning")
@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("true", "sentence"),
        ("sentence", "sentence"),
        ("1", "sentence"),
        ("TRUE", "sentence"),
        ("false", "none"),
        ("0", "none"),
        ("word", "word"),
    ],
)
def test_return_timestamps_values_as_the_runner_reads_them(client, value, mode):
    response = transcribe(client, wav(3.0), return_timestamps=value)
    assert response.status_code == 200, response.text
    body = response.json()
    if mode == "none":
        assert body["chunks"] == []
        return
    assert body["chunks"], body
    assert_chunks_fit(body["chunks"], 3.0)
    # The chunks split the transcription: together they hold its text.
    assert "".join(c["text"] for c in body["chunks"]).split() == body["text"].split()


def test_default_is_sentence_timestamps(client):
    body = transcribe(client, wav(3.0)).json()
    assert body["chunks"]
    assert_chunks_fit(body["chunks"], 3.0)


def test_long_audio_is_transcribed_in_30_second_windows(client):
    response = transcribe(client, wav(40.0, rate=16_000), return_timestamps="sentence")
    assert response.status_code == 200, response.text
    chunks = response.json()["chunks"]
    assert_chunks_fit(chunks, 40.0)
    # One 30 s window can only place text in its first 30 s: a later start needs a second one.
    assert max(c["timestamp"][0] for c in chunks) > 30.0


def test_metadata_must_be_a_json_object(client):
    ok = transcribe(client, wav(1.0), return_timestamps="false", metadata='{"duration": 1.0}')
    assert ok.status_code == 200, ok.text
    for bad in ("{not json", "[1, 2]", '"text"'):
        response = transcribe(client, wav(1.0), metadata=bad)
        assert response.status_code == 400, bad
        assert response.json()["detail"]["msg"].startswith("metadata must be a JSON object")


def test_unknown_return_timestamps_is_a_400(client):
    response = transcribe(client, wav(1.0), return_timestamps="paragraph")
    assert response.status_code == 400
    assert "return_timestamps must be" in response.json()["detail"]["msg"]


# --- refused uploads -----------------------------------------------------------------------


def test_empty_file_is_a_400(client):
    response = transcribe(client, b"")
    assert response.status_code == 400
    assert response.json() == {"detail": {"msg": "The uploaded audio file is empty."}}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: png(), id="png"),
        pytest.param(lambda: np.random.default_rng(1).bytes(20_000), id="random-bytes"),
        pytest.param(lambda: wav(1.0)[:44], id="wav-header-only"),
        pytest.param(lambda: encoded("mp4", 2.0)[:20_000], id="truncated-mp4"),
        pytest.param(lambda: encoded("flac", 2.0)[:60], id="truncated-flac"),
        pytest.param(lambda: b"#EXTM3U\n#EXTINF:10,\nfile:///etc/hostname\n", id="playlist"),
    ],
)
def test_undecodable_files_get_the_runners_415(client, data):
    response = transcribe(client, data(), "clip.mp3")
    assert response.status_code == 415
    assert response.json() == {"detail": {"msg": "Unsupported audio format or malformed file."}}


def test_missing_audio_part_is_a_422(client):
    response = client.post("/audio-to-text", data={"return_timestamps": "true"})
    assert response.status_code == 422


def test_file_over_max_audio_bytes_gets_413(app_factory, tiny_whisper):
    small = wav(0.2)
    app = app_factory([whisper_entry(tiny_whisper)], limits={"max_audio_bytes": len(small)})
    with running_client(app) as client:
        response = transcribe(client, wav(0.5))
        assert response.status_code == 413
        assert response.json() == {"detail": {"msg": "File size exceeds limit."}}
        assert transcribe(client, small, return_timestamps="false").status_code == 200


def test_audio_over_max_audio_seconds_gets_400_naming_the_limit(app_factory, tiny_whisper):
    app = app_factory([whisper_entry(tiny_whisper)], limits={"max_audio_seconds": 2})
    with running_client(app) as client:
        # A small FLAC, long once decoded: the limit is on the audio, not the bytes.
        response = transcribe(client, encoded("flac", 3.0), "long.flac")
        assert response.status_code == 400
        assert "ADAPTER_MAX_AUDIO_SECONDS=2" in response.json()["detail"]["msg"]
        ok = transcribe(client, encoded("flac", 1.5), "short.flac", return_timestamps="false")
        assert ok.status_code == 200


def test_word_timestamps_are_refused_beyond_the_runners_bound(client, monkeypatch):
    monkeypatch.setattr(speech, "MAX_WORD_TIMESTAMP_SECONDS", 2)
    response = transcribe(client, wav(3.0), return_timestamps="word")
    assert response.status_code == 400
    assert "Word timestamps are only supported" in response.json()["detail"]["msg"]
    assert transcribe(client, wav(3.0), return_timestamps="sentence").status_code == 200
