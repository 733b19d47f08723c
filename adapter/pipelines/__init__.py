"""Each pipeline's glue between the runner contract and `functions/`, in one registry.

To add a pipeline: a module here with a `PipelineRunner` subclass, and one line below.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from adapter.pipelines.audio_to_text import AudioToTextRunner
from adapter.pipelines.base import PipelineRunner
from adapter.pipelines.image_to_image import ImageToImageRunner
from adapter.pipelines.image_to_text import ImageToTextRunner
from adapter.pipelines.image_to_video import ImageToVideoRunner
from adapter.pipelines.llm import LLMRunner
from adapter.pipelines.segment_anything_2 import SegmentAnything2Runner
from adapter.pipelines.text_to_image import TextToImageRunner
from adapter.pipelines.text_to_speech import TextToSpeechRunner
from adapter.pipelines.text_to_video import TextToVideoRunner
from adapter.pipelines.upscale import UpscaleRunner
from contract.errors import ConfigError
from contract.pipelines import Pipeline

PIPELINES: dict[Pipeline, PipelineRunner] = {
    runner.pipeline: runner
    for runner in (
        TextToImageRunner(),
        ImageToImageRunner(),
        ImageToVideoRunner(),
        UpscaleRunner(),
        AudioToTextRunner(),
        LLMRunner(),
        SegmentAnything2Runner(),
        ImageToTextRunner(),
        TextToSpeechRunner(),
        TextToVideoRunner(),
    )
}


class ForwardedOnlyRunner(PipelineRunner):
    """A pipeline of the contract with no implementation here. Its requests are checked
    against the service's limits like any other, so a backend that forwards them (http) can
    serve them from a runner that implements it; loading it here is refused."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline  # type: ignore[misc]

    def load(self, *_args: Any) -> Any:
        raise ConfigError(
            f"{self.pipeline.value} has no implementation here; serve it through the http "
            "backend from a runner that implements it"
        )

    def run(self, *_args: Any) -> BaseModel:
        raise ConfigError(f"{self.pipeline.value} has no implementation here")


def glue_for(pipeline: Pipeline) -> PipelineRunner:
    """The pipeline's glue, or the forward-only one where it has none."""
    return PIPELINES.get(pipeline) or ForwardedOnlyRunner(pipeline)
