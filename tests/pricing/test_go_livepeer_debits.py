"""What go-livepeer's orchestrator really debits, where our count used to differ (issue 17's
pricing corrections): audio length as lpms measures it, a streamed /llm cut off midway, a
`pixels_per_unit` written as 1e8, the wei of the price the table writes, and Livepeer's
text-to-speech price per unit. (live-video-to-video's rate: tests/contract/test_pricing_units.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from adapter.pipelines.audio_to_text import AudioToTextRunner
from adapter.settings import Limits
from contract.aimodels import ModelEntry
from contract.errors import UnitsError
from contract.schemas import (
    AudioToTextForm,
    LLMChoice,
    LLMMessage,
    LLMResponse,
    LLMTokenUsage,
    RequestModel,
    TextToSpeechParams,
    Upload,
)
from contract.units import UNITS_PER_CHARACTER, RequestFacts, request_units
from pricing.__main__ import main as pricing_main
from tests.support.apps import entry, serve
from tests.support.audio import encoded, wav
from tests.support.fake_backend import FakeBackend

REPO = Path(__file__).resolve().parents[2]
SECONDS = 29.9996  # just under 30 s: where truncating and rounding part ways


def billed_units(data: bytes) -> int:
    """The units the adapter counts for an audio-to-text request with this upload."""
    request = AudioToTextForm.model_validate({"audio": Upload(data, filename="audio")})
    facts = asyncio.run(AudioToTextRunner().prepare(request, Limits())).facts
    return request_units(request, facts)


def id3_cover_art(size: int) -> bytes:
    """An ID3v2.3 tag holding one picture of `size` bytes, as music files carry their cover."""
    body = b"\x00image/jpeg\x00\x03\x00" + os.urandom(size)
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    n = len(frame)
    syncsafe = bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127])
    return b"ID3\x03\x00\x00" + syncsafe + frame


# --- audio: the container's duration read through a pipe, truncated ------------------------


@pytest.mark.parametrize(
    ("kind", "seconds"),
    [
        ("flac", 29),  # STREAMINFO says 29.9996 s: 29, where the decoded length rounds to 30
        ("m4a", 29),  # the moov atom's duration, truncated
        ("webm", 30),  # Matroska's own duration field (30.007 s)
    ],
)
def test_audio_is_billed_on_the_containers_duration_truncated(kind, seconds):
    assert billed_units(encoded(kind, SECONDS)) == seconds * 1000


def test_mp3_and_wav_without_a_duration_are_billed_on_bytes_over_bitrate():
    # Read from a pipe, FFmpeg gives these no duration; lpms divides the file's bits by the
    # stream's bitrate, tags included: a 30 s MP3 with 200 KB of cover art bills 42 s.
    mp3 = encoded("mp3", SECONDS)  # 128 kbit/s
    assert billed_units(mp3) == len(mp3) * 8 // 128_000 * 1000 == 30_000
    tagged = id3_cover_art(200_000) + mp3
    assert billed_units(tagged) == len(tagged) * 8 // 128_000 * 1000 == 42_000
    audio = wav(SECONDS, rate=22_050)  # 16-bit mono: 352,800 bit/s
    assert billed_units(audio) == len(audio) * 8 // 352_800 * 1000 == 30_000


def test_adts_aac_without_a_duration_is_billed_on_bytes_over_bitrate():
    # The third format lpms estimates: raw ADTS AAC from a pipe has no duration either.
    import av

    from functions.audio import _Pipe

    data = encoded("aac", SECONDS)
    with av.open(_Pipe(data)) as container:
        assert container.format.name == "aac" and container.duration is None
        bit_rate = container.streams.audio[0].codec_context.bit_rate
    assert bit_rate > 0
    assert billed_units(data) == len(data) * 8 // bit_rate * 1000 == 30_000


@pytest.mark.parametrize("data", [encoded("ogg", SECONDS), wav(0.5)], ids=["ogg", "half-second"])
def test_audio_go_livepeer_cannot_measure_is_not_billed(data):
    # Ogg read from a pipe has neither a duration nor a bitrate; half a second truncates to 0.
    # The orchestrator refuses both ("Unable to calculate duration"): nothing is debited.
    with pytest.raises(UnitsError, match="Unable to calculate duration"):
        billed_units(data)


# --- llm: a stream is debited once its answer starts ---------------------------------------


class LongStreamBackend(FakeBackend):
    """Streams an LLM answer of 50 pieces, 50 ms apart (a client can leave midway)."""

    async def stream(self, model: Any, request: RequestModel) -> AsyncIterator[BaseModel]:
        for index in range(50):
            yield LLMResponse(
                id="x",
                model=model.model_id,
                created=0,
                usage=LLMTokenUsage(prompt_tokens=1, completion_tokens=index, total_tokens=index),
                choices=[
                    LLMChoice(
                        index=0,
                        finish_reason="",
                        delta=LLMMessage(role="assistant", content="word "),
                    )
                ],
            )
            await asyncio.sleep(0.05)


def units_counted(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    found = re.findall(r"^runner_(units_total|requests_total)\{([^}]*)\} (\S+)$", text, re.M)
    return {f"{name}{{{labels}}}": float(value) for name, labels, value in found}


def test_a_stream_cut_off_midway_counts_its_max_tokens(fake_app_factory):
    app = fake_app_factory([entry("llm", "test/tiny-llm")], LongStreamBackend())
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 300, "stream": True}
    with serve(app) as base:
        with httpx.stream("POST", f"{base}/llm", json=body, timeout=10) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        # Left after one event: the request ends (not 200) and is still debited.
        deadline = time.monotonic() + 10
        found = units_counted(base)
        while not any(key.startswith("requests_total") for key in found):
            assert time.monotonic() < deadline
            time.sleep(0.05)
            found = units_counted(base)
    assert found['units_total{model="test/tiny-llm",pipeline="llm"}'] == 300
    assert 'requests_total{model="test/tiny-llm",pipeline="llm",status="200"}' not in found


# --- pixels_per_unit: any positive whole JSON number ----------------------------------------


@pytest.mark.parametrize("value", [1e8, 100000000.0, 100000000])
def test_pixels_per_unit_is_any_positive_whole_number(value):
    fields = {"pipeline": "llm", "model_id": "m", "pixels_per_unit": value}
    parsed = ModelEntry.model_validate(fields).pixels_per_unit
    assert parsed == 100_000_000 and type(parsed) is int


def test_the_pricing_table_reads_pixels_per_unit_written_as_1e8(tmp_path, capsys):
    config = tmp_path / "aiModels.json"
    config.write_text(
        '[{"pipeline": "text-to-image", "model_id": "stabilityai/sdxl-turbo",'
        ' "price_per_unit": 1.048, "pixels_per_unit": 1e8, "currency": "USD"}]'
    )
    results = REPO / "examples/pricing/h100-sdxl-turbo.json"
    args = ["table", str(config), "--results", str(results), "--min-containers", "1"]
    assert pricing_main([*args, "--jobs-per-hour", "1800"]) == 0
    assert "current price: 1.048e-8 USD/unit" in capsys.readouterr().out


# --- the worked example: wei of the price written -------------------------------------------


def test_the_wei_column_is_the_price_written_not_the_unrounded_one(capsys):
    examples = REPO / "examples/pricing"
    args = ["table", str(examples / "aiModels.json"), "--results"]
    args += [str(examples / "h100-sdxl-turbo.json"), "--min-containers", "1"]
    args += ["--jobs-per-hour", "1800", "--eth-usd", "3000"]
    assert pricing_main(args) == 0
    out = capsys.readouterr().out
    written = re.search(r'"price_per_unit": ([\d.]+), "pixels_per_unit": (\d+)', out)
    assert written is not None
    usd = Decimal(written.group(1)) / int(written.group(2))  # 1.048e-8
    wei = usd / 3000 * Decimal(10) ** 18  # 3.4933e6 (the unrounded 1.04775e-8 gave 3.4925e6)
    row = next(line for line in out.splitlines() if line.strip().startswith("H100  "))
    assert f"{wei:.3e}".replace("e+0", "e+") in row.split()


# --- text-to-speech: Livepeer's price per character is 1000 units ---------------------------


def test_the_text_to_speech_comparison_is_per_unit_not_per_character():
    per_character = Decimal("1.5e-6")  # Livepeer's docs
    per_unit = per_character / UNITS_PER_CHARACTER
    assert per_unit == Decimal("1.5e-9")
    doc = (REPO / "docs/pricing.md").read_text(encoding="utf-8")
    assert "1.5e-06 USD per\ncharacter, which is 1.5e-09 USD per unit" in doc
    # A request is debited 1000 x its characters, so the two agree on what a text costs.
    text = "Hello, world!"
    units = request_units(TextToSpeechParams.model_validate({"text": text}), RequestFacts())
    assert units * per_unit == len(text) * per_character


def test_the_pricing_doc_says_the_debit_is_above_the_price_and_what_the_gateway_prepays():
    # go-livepeer's -autoAdjustPrice (on by default) adds the ticket redemption's tx cost to the
    # price (core/ai_orchestrator.go jobPriceInfo); its gateway pre-pays text-to-speech by
    # len(text), bytes (server/ai_process.go submitTextToSpeech), the orchestrator debits 1000 x
    # code points.
    doc = " ".join((REPO / "docs/pricing.md").read_text(encoding="utf-8").split())
    assert "`-autoAdjustPrice` (on by default)" in doc
    assert "(1 + tx cost / face value)" in doc
    assert "pre-pays only the text's length in bytes" in doc
