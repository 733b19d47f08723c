"""Each pipeline's glue between the runner contract and `functions/`, in one registry.

To add a pipeline: a module here with a `PipelineRunner` subclass, and one line below.
"""

from __future__ import annotations

from adapter.pipelines.audio_to_text import AudioToTextRunner
from adapter.pipelines.base import PipelineRunner
from adapter.pipelines.image_to_image import ImageToImageRunner
from adapter.pipelines.image_to_video import ImageToVideoRunner
from adapter.pipelines.llm import LLMRunner
from adapter.pipelines.text_to_image import TextToImageRunner
from adapter.pipelines.upscale import UpscaleRunner
from adapter.schemas import Pipeline

PIPELINES: dict[Pipeline, PipelineRunner] = {
    runner.pipeline: runner
    for runner in (
        TextToImageRunner(),
        ImageToImageRunner(),
        ImageToVideoRunner(),
        UpscaleRunner(),
        AudioToTextRunner(),
        LLMRunner(),
    )
}
