"""Fixtures of the Modal tests: modal_app.py's GPU classes, defined again on this machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import modal
import pytest

from adapter.pipelines import PIPELINES
from adapter.pipelines.base import PipelineRunner
from modal_deploy.runtime import define_gpu_classes


@pytest.fixture(scope="session")
def define_cpu_classes(tiny_modal_app: Any) -> Callable[..., dict[str, Any]]:
    """Define modal_app.py's GPU classes again as it defines them (the same plan, through
    `define_gpu_classes`), with their workers on this machine's CPU instead of CUDA, and the
    given glue injected into the registry they run."""
    app = tiny_modal_app
    on_cpu = app.PLAN.gpu_settings.model_copy(update={"device": "cpu"})
    plan = replace(app.PLAN, gpu_settings=on_cpu)

    def define(*glues: PipelineRunner) -> dict[str, Any]:
        pipelines = {**PIPELINES, **{glue.pipeline: glue for glue in glues}}
        return define_gpu_classes(modal.App(app.PLAN.app_name), plan, module=app.__name__,
                                  image=app.image, volume=app.volume, pipelines=pipelines)

    return define
