"""A job's request: built from its params and uploads with the pipeline's own request model, as
stored (JSON, uploads as references to files in the output store) and rebuilt to run."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from adapter.jobs.errors import validation_message
from adapter.jobs.files import input_key
from adapter.jobs.model import JobRecord
from adapter.jobs.outputs.base import OutputStore
from contract.errors import BadRequestError
from contract.pipelines import PipelineSpec
from contract.schemas import RequestModel, Upload

UPLOAD_REF = "$upload"


def build_request(
    spec: PipelineSpec, model_id: str, params: dict[str, Any], uploads: dict[str, Upload]
) -> RequestModel:
    """The pipeline's request model of `params` and `uploads`, for the model; a 400 naming the
    fields at fault otherwise."""
    missing = [field for field in spec.upload_fields if field not in uploads]
    if missing:
        raise BadRequestError(
            f"{spec.pipeline.value} takes a file upload: send the job as multipart/form-data "
            f"with the file in field {missing[0]!r}."
        )
    fields = {key: value for key, value in params.items() if key not in spec.upload_fields}
    fields |= uploads
    fields[spec.model_field] = model_id
    if "stream" in spec.request.model_fields:
        fields["stream"] = False  # a job keeps the whole answer; its progress is the stream
    try:
        return spec.request.model_validate(fields)
    except ValidationError as exc:
        raise BadRequestError(validation_message(exc.errors(), prefix="params.")) from exc


def stored_params(spec: PipelineSpec, request: RequestModel) -> dict[str, Any]:
    """The request as JSON for the job's row: its uploads as references to their files."""
    params: dict[str, Any] = request.model_dump(
        mode="json", exclude={*spec.upload_fields, spec.model_field, "stream"}
    )
    for field in spec.upload_fields:
        upload = getattr(request, field)
        assert isinstance(upload, Upload)
        params[field] = {
            UPLOAD_REF: field,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": len(upload.data),
        }
    return params


async def load_uploads(
    spec: PipelineSpec, job_id: str, params: dict[str, Any], outputs: OutputStore
) -> dict[str, Upload]:
    """A stored job's uploads, read back from the output store."""
    uploads = {}
    for field in spec.upload_fields:
        ref = params.get(field)
        if not isinstance(ref, dict) or ref.get(UPLOAD_REF) != field:
            raise BadRequestError(f"The job has no upload for {field!r}.")
        try:
            data = await outputs.get(input_key(job_id, field))
        except KeyError as exc:
            raise BadRequestError(f"The job's uploaded {field} file is gone.") from exc
        uploads[field] = Upload(data, ref.get("filename"), ref.get("content_type"))
    return uploads


async def job_request(spec: PipelineSpec, job: JobRecord, outputs: OutputStore) -> RequestModel:
    uploads = await load_uploads(spec, job.id, job.params, outputs)
    return build_request(spec, job.model_id, job.params, uploads)
