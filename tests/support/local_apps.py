"""Apps over the local backend with glue injected into its registry (instead of monkeypatching
the real one): a test's own `PipelineRunner` serves its pipeline, the real glue the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from adapter.app import create_app
from adapter.backends.local import LocalBackend
from adapter.pipelines import PIPELINES
from adapter.pipelines.base import PipelineRunner
from contract.aimodels import merge_entries, parse_entries
from tests.support.apps import make_settings


def app_with_glue(
    tmp_path: Path, entries: list[dict[str, Any]], *glues: PipelineRunner, **settings: Any
) -> FastAPI:
    """The app of `make_app(tmp_path, entries, **settings)`, its models run by `glues`."""
    app_settings = make_settings(tmp_path, **settings)
    models = merge_entries(parse_entries(entries))
    pipelines = {**PIPELINES, **{glue.pipeline: glue for glue in glues}}
    return create_app(app_settings, models, LocalBackend(app_settings, models, pipelines))
