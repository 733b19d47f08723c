"""`GET /v1/jobs/pipelines`: what a job can be submitted for here, as the page's pickers need it.

Each served pipeline that jobs run, with its models (the default one marked), its prompt field,
its file uploads (field names and the media types the decoders accept) and its other plain
parameters with their types and defaults, all read from the one pipeline table
(contract/pipelines.py) and the request models. Open like /version: it names what is served,
nothing of anyone's jobs. Registered before `/v1/jobs/{id}`, which would take "pipelines" for an id.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from contract.aimodels import ServedModel
from contract.pipelines import PIPELINE_SPECS, Pipeline, PipelineSpec

CATALOG_PATH = "/v1/jobs/pipelines"

# The pipelines a job can run: every runner pipeline but the live one, which streams instead.
NOT_JOBS = frozenset({Pipeline.LIVE_VIDEO_TO_VIDEO})

# What each upload field's decoder reads (Pillow for images, PyAV's FFmpeg for audio), as the
# page's file picker offers it.
UPLOAD_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"),
    "audio": ("audio/*", "video/mp4", "video/webm"),
}
# The field a pipeline's prompt goes in, when it has one; for /llm the page sends the prompt as
# the one user message.
PROMPT_FIELDS = ("prompt", "text", "messages")

ParamType = Literal["string", "integer", "number", "boolean"]
_TYPES: dict[type, ParamType] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class UploadInfo(BaseModel):
    field: str
    accept: list[str] = Field(description="Media types the decoder reads (an `accept` list).")
    required: bool


class ParamInfo(BaseModel):
    name: str
    type: ParamType
    nullable: bool = False
    default: Any = None
    description: str = ""


class ModelInfo(BaseModel):
    model_id: str
    default: bool = Field(description="Used when a job names no model_id.")
    enhance: dict[str, Any] = Field(
        description="What an enhanced job changes (POST /v1/jobs/{id}/enhance); empty: it "
        "cannot be enhanced."
    )


class PipelineInfo(BaseModel):
    pipeline: str
    summary: str
    description: str
    body: Literal["json", "multipart"]
    prompt_field: str | None = Field(description="Where the prompt goes (`messages`: as a chat).")
    model_field: str
    uploads: list[UploadInfo]
    params: list[ParamInfo] = Field(description="The request's other plain fields.")
    models: list[ModelInfo]


class PipelineCatalog(BaseModel):
    data: list[PipelineInfo]
    auth_required: bool = Field(description="Whether the jobs routes need a bearer token.")


def _param_type(annotation: Any) -> tuple[ParamType, bool] | None:
    """The JSON type of a plain field and whether it may be null; None for anything else."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        if len(args) != 1:
            return None
        annotation = args[0]
    kind = _TYPES.get(annotation) if isinstance(annotation, type) else None
    return None if kind is None else (kind, nullable)


# The settings an enhanced job of a model changes (the jobs door's own rule).
Enhanced = Callable[[PipelineSpec, ServedModel], dict[str, Any]]


def pipeline_info(
    spec: PipelineSpec, models: list[ServedModel], enhanced: Enhanced
) -> PipelineInfo:
    fields = spec.request.model_fields
    prompt = next((name for name in PROMPT_FIELDS if name in fields), None)
    uploads = [
        UploadInfo(
            field=name,
            accept=list(UPLOAD_TYPES.get(name, ("application/octet-stream",))),
            required=fields[name].is_required(),
        )
        for name in spec.upload_fields
    ]
    params = []
    skip = {spec.model_field, prompt, *spec.upload_fields}
    for name, info in fields.items():
        kind = None if name in skip else _param_type(info.annotation)
        if kind is None:
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        params.append(
            ParamInfo(
                name=name,
                type=kind[0],
                nullable=kind[1],
                default=default,
                description=info.description or "",
            )
        )
    defaults = [m for m in models if m.runner.default] or models[:1]
    return PipelineInfo(
        pipeline=spec.pipeline.value,
        summary=spec.summary,
        description=spec.description,
        body=spec.body,
        prompt_field=prompt,
        model_field=spec.model_field,
        uploads=uploads,
        params=params,
        models=[
            ModelInfo(model_id=m.model_id, default=m in defaults[:1], enhance=enhanced(spec, m))
            for m in models
        ],
    )


def catalog(models: list[ServedModel], auth_required: bool, enhanced: Enhanced) -> PipelineCatalog:
    """The served job pipelines in the pipeline table's order, each with its served models."""
    entries = []
    for pipeline, spec in PIPELINE_SPECS.items():
        served = [m for m in models if m.pipeline == pipeline]
        if served and pipeline not in NOT_JOBS:
            entries.append(pipeline_info(spec, served, enhanced))
    return PipelineCatalog(data=entries, auth_required=auth_required)


router = APIRouter(tags=["jobs"])


@router.get(CATALOG_PATH, response_model=PipelineCatalog, operation_id="listJobPipelines")
async def list_job_pipelines(request: Request) -> PipelineCatalog:
    """The pipelines and models a job can be submitted for, with their uploads and parameters."""
    service = request.app.state.service
    door = request.app.state.jobs
    return catalog(service.models, bool(service.tokens), door.enhanced_settings)
