"""Fixtures of the Modal tests: modal_app.py's GPU classes, defined again on this machine."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import modal
import pytest

from adapter.pipelines import PIPELINES
from adapter.pipelines.base import PipelineRunner
from modal_deploy.runtime import define_gpu_classes
from tests.support.modal_inprocess import (
    InProcessClasses,
    InProcessDict,
    InProcessQueue,
    import_modal_app,
)


@pytest.fixture(scope="session")
def define_in_process() -> Callable[..., InProcessClasses]:
    """`define(app, *glues, **options)`: the GPU classes of `app` (an imported modal_app.py)
    defined again as it defines them (the same plan, through `define_gpu_classes`), with their
    workers on this machine's CPU instead of CUDA and `glues` injected into the registry they
    run; served in this process as the Modal backend calls them, with their own stream Queue
    (tests/support/modal_inprocess.py; `options` go to InProcessClasses), the commits of the
    compile cache recorded in its `compile_cache_commits`, the failed-marks Dict in its
    `failed_marks` (shared by all the containers of one definition, as on Modal)."""

    def define(app: ModuleType, *glues: PipelineRunner, **options: Any) -> InProcessClasses:
        on_cpu = app.PLAN.gpu_settings.model_copy(update={"device": "cpu"})
        plan = replace(app.PLAN, gpu_settings=on_cpu)
        pipelines = {**PIPELINES, **{glue.pipeline: glue for glue in glues}}
        stream_queue = InProcessQueue()
        commits: list[str] = []  # each commit of the compile cache, as a model became ready
        failed_marks = InProcessDict()
        classes = define_gpu_classes(
            modal.App(app.PLAN.app_name),
            plan,
            module=app.__name__,
            image=app.image,
            volume=app.volume,
            compile_cache=app.compile_cache,
            stream_queue=stream_queue,
            failed_marks=failed_marks,
            pipelines=pipelines,
            commit_compile_cache=lambda: commits.append("compile cache committed"),
        )
        served = InProcessClasses(classes, stream_queue, **options)
        served.compile_cache_commits = commits
        served.failed_marks = failed_marks
        return served

    return define


@pytest.fixture(scope="session")
def in_process_classes(
    tiny_modal_app: ModuleType, define_in_process: Callable[..., InProcessClasses]
) -> Callable[..., InProcessClasses]:
    """`define_in_process` for the tiny text-to-image app (`tiny_modal_app`)."""

    def define(*glues: PipelineRunner, **options: Any) -> InProcessClasses:
        return define_in_process(tiny_modal_app, *glues, **options)

    return define


@pytest.fixture(scope="session")
def tiny_llm_modal_app(tiny_llm: Path, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """modal_app.py deployed (imported) with one tiny chat LLM on local disk."""
    entry = {
        "pipeline": "llm",
        "model_id": "test/tiny-llm",
        "warm": True,
        "capacity": 1,
        "runner": {"model_path": str(tiny_llm), "modal": {"gpu": "T4"}},
    }
    path = tmp_path_factory.mktemp("modal-llm") / "aiModels.json"
    path.write_text(json.dumps([entry]))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})
