"""Text-to-image glue whose real pipeline waits, between its denoising steps, until the test lets
it go (or the job is stopped): a job a test can hold running, to cancel it or fill the queue."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel

from adapter.pipelines.base import StopCheck
from adapter.pipelines.text_to_image import TextToImageRunner
from contract.schemas import RequestModel


class HeldStop:
    """The job's stop check, held at each step while the gate is closed; its progress passes."""

    def __init__(self, should_stop: StopCheck, glue: PausingTextToImage) -> None:
        self.should_stop = should_stop
        self.glue = glue
        self.on_step = getattr(should_stop, "on_step", None)

    def __call__(self) -> bool:
        self.glue.at_step.set()
        while not self.glue.gate.wait(0.01):
            if self.should_stop():
                return True
        return self.should_stop()


class PausingTextToImage(TextToImageRunner):
    def __init__(self) -> None:
        self.gate = threading.Event()  # set: steps run freely
        self.at_step = threading.Event()  # set once a job has reached a step

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        return super().run(handle, request, HeldStop(should_stop, self))
