"""How long one request of each pipeline may take at a backend before it is given up.

Generous: they bound a stuck backend, not a slow model. image-to-video at 25 frames of
576x1024 takes about 20 s on an H100 and minutes on smaller GPUs.
"""

from __future__ import annotations

from adapter.config import ServedModel
from adapter.schemas import Pipeline

DEFAULT_TIMEOUT_S: dict[Pipeline, float] = {
    Pipeline.TEXT_TO_IMAGE: 300.0,
    Pipeline.IMAGE_TO_IMAGE: 300.0,
    Pipeline.IMAGE_TO_VIDEO: 900.0,
    Pipeline.UPSCALE: 300.0,
    Pipeline.AUDIO_TO_TEXT: 900.0,
    Pipeline.SEGMENT_ANYTHING_2: 120.0,
    Pipeline.LLM: 600.0,
    Pipeline.IMAGE_TO_TEXT: 120.0,
    Pipeline.TEXT_TO_SPEECH: 300.0,
    Pipeline.LIVE_VIDEO_TO_VIDEO: 60.0,
}


def request_timeout_s(model: ServedModel) -> float:
    """The entry's `runner.request_timeout_s`, else the pipeline's default."""
    configured = model.runner.request_timeout_s
    return float(configured) if configured is not None else DEFAULT_TIMEOUT_S[model.pipeline]
