"""Speech to text with Whisper through transformers' speech-recognition pipeline.

As in Livepeer's runner: audio longer than 30 s is cut into 30 s windows decoded in batches of
16 (4 for word timestamps over 200 s, whose alignment needs more memory), at most 128 new tokens
per window (fewer if the model's generation config sets `max_new_tokens`), and word timestamps
are refused beyond an hour of audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.audio import SAMPLE_RATE
from functions.cancel import GenerationCancelled
from functions.inputs import inference_mode

if TYPE_CHECKING:
    import numpy as np
    import torch

CHUNK_SECONDS = 30
BATCH_SIZE = 16
LONG_WORD_BATCH_SIZE = 4
LONG_WORD_SECONDS = 200
MAX_WORD_TIMESTAMP_SECONDS = 3600
MAX_NEW_TOKENS = 128


class Timestamps(StrEnum):
    NONE = "none"
    SENTENCE = "sentence"
    WORD = "word"


def check_inputs(*, seconds: float, timestamps: Timestamps) -> None:
    """Refuse audio `SpeechToText.transcribe` cannot serve as asked (InputError).

    `seconds` is the audio's length (`functions.audio.decode_audio` refuses an empty one).
    Plain Python: the adapter calls it, once it has decoded
    the upload, before the request takes any capacity.
    """
    if timestamps is Timestamps.WORD and seconds > MAX_WORD_TIMESTAMP_SECONDS:
        raise InputError(
            f"Word timestamps are only supported for audio up to "
            f"{MAX_WORD_TIMESTAMP_SECONDS} s; this audio is {seconds:.0f} s."
        )


@dataclass(frozen=True)
class TimedText:
    start: float
    end: float
    text: str


@dataclass
class Transcription:
    text: str
    chunks: list[TimedText]


class SpeechToText:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        own_limit = pipe.model.generation_config.max_new_tokens
        self.max_new_tokens = min(MAX_NEW_TOKENS, own_limit or MAX_NEW_TOKENS)

    @classmethod
    def load(cls, folder: Path, *, device: torch.device, dtype: torch.dtype) -> SpeechToText:
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        model = AutoModelForSpeechSeq2Seq.from_pretrained(folder, dtype=dtype)
        processor = AutoProcessor.from_pretrained(folder)
        pipe = pipeline(
            "automatic-speech-recognition",
            model=model.to(device).eval(),
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=device,
            dtype=dtype,
        )
        return cls(pipe)

    @inference_mode
    def transcribe(
        self,
        samples: np.ndarray,
        *,
        timestamps: Timestamps = Timestamps.SENTENCE,
        should_stop: Callable[[], bool] | None = None,
    ) -> Transcription:
        """Transcribe 16 kHz mono float32 samples, for arguments `check_inputs` accepted."""
        from functions.cancel import stop_when_asked

        seconds = samples.size / SAMPLE_RATE

        # 1. Long audio goes in 30 s windows, decoded in batches.
        options: dict[str, Any] = {}
        if seconds > CHUNK_SECONDS:
            long_words = timestamps is Timestamps.WORD and seconds > LONG_WORD_SECONDS
            options["chunk_length_s"] = CHUNK_SECONDS
            options["batch_size"] = LONG_WORD_BATCH_SIZE if long_words else BATCH_SIZE
            # The pipeline warns chunking is experimental for seq2seq models; Whisper's
            # timestamps are what make its overlapping windows safe to merge.
            options["ignore_warning"] = True

        # 2. Decode.
        output = self.pipe(
            {"raw": samples, "sampling_rate": SAMPLE_RATE},
            return_timestamps={
                Timestamps.NONE: False,
                Timestamps.SENTENCE: True,
                Timestamps.WORD: "word",
            }[timestamps],
            generate_kwargs={
                "max_new_tokens": self.max_new_tokens,
                "stopping_criteria": stop_when_asked(should_stop),
            },
            **options,
        )
        if should_stop is not None and should_stop():
            raise GenerationCancelled()

        # 3. Timestamps the client can rely on.
        chunks = output.get("chunks", []) if timestamps is not Timestamps.NONE else []
        return Transcription(text=output["text"], chunks=tidy_chunks(chunks, seconds))


def tidy_chunks(chunks: list[dict[str, Any]], seconds: float) -> list[TimedText]:
    """Chunks whose timestamps lie within the audio, in order, with both ends set.

    Whisper predicts times on a 30 s grid whatever the audio's length, may leave the last end
    open (None) when a window ends mid-sentence, and merging overlapping windows can step back
    in time; each start is kept at or after the one before, each end at or after its start.
    """
    tidy: list[TimedText] = []
    floor = 0.0
    for chunk in chunks:
        start, end = chunk["timestamp"]
        start = floor if start is None else min(max(float(start), floor), seconds)
        end = seconds if end is None else min(max(float(end), start), seconds)
        # Rounded to Whisper's 0.02 s steps, without the float noise of its arithmetic.
        tidy.append(
            TimedText(
                start=min(round(start, 2), seconds),
                end=min(round(end, 2), seconds),
                text=chunk["text"],
            )
        )
        floor = start
    return tidy
