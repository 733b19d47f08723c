"""`/v1/models`: the served models that the OpenAI-compatible routes can reach."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapter.openai.errors import model_not_found
from contract.pipelines import Pipeline

if TYPE_CHECKING:
    from adapter.service import RunnerService

# The pipelines behind an OpenAI route: chat, image generation, transcription.
OPENAI_PIPELINES = (Pipeline.LLM, Pipeline.TEXT_TO_IMAGE, Pipeline.AUDIO_TO_TEXT)
OWNER = "modal-ai-runner"


def model_json(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


def served_ids(service: RunnerService) -> list[str]:
    """Each model id once, in configuration order."""
    ids: dict[str, None] = {}
    for model in service.models:
        if model.pipeline in OPENAI_PIPELINES:
            ids.setdefault(model.model_id, None)
    return list(ids)


def list_models(service: RunnerService, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_json(i, created) for i in served_ids(service)]}


def get_model(service: RunnerService, model_id: str, created: int) -> dict[str, Any]:
    if model_id not in served_ids(service):
        raise model_not_found(model_id)
    return model_json(model_id, created)
