"""Request bodies a Live Runner client can send, read into the pipeline's request model.

Livepeer's Python gateway SDK sends only JSON objects, so on this door the upload pipelines take
their file as base64 (or a `data:` URL) in a JSON body too; multipart keeps working for raw HTTP
clients. Both end as the same request model that the batch routes build, with the same limits:
the decoded file counts against `max_request_bytes` as a multipart upload does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from adapter.settings import Limits
from contract.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError
from contract.pipelines import PipelineSpec
from contract.schemas import RequestModel, Upload

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,", re.I)
# Bodies this big are parsed off the event loop, so /health keeps answering meanwhile.
_OFF_LOOP_BYTES = 256 * 1024
# The room a JSON body needs beyond its base64 file: the other fields and the quoting.
_JSON_OVERHEAD_BYTES = 64 * 1024


class RequestValidationFailed(Exception):
    """The body does not fit the pipeline's schema: FastAPI's 422, with its `detail` list."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


def max_body_bytes(spec: PipelineSpec, limits: Limits) -> tuple[int, int]:
    """(any body, JSON body) byte limits of the app's route.

    A JSON pipeline keeps the batch routes' JSON limit. An upload pipeline's JSON body may carry
    its file as base64 (4/3 of its bytes), so its JSON limit is that of the multipart upload.
    """
    if not spec.upload_fields:
        return limits.max_request_bytes, limits.max_json_request_bytes
    as_base64 = -(-limits.max_request_bytes // 3) * 4 + _JSON_OVERHEAD_BYTES
    return as_base64, as_base64


def as_upload(data: bytes, filename: str, content_type: str | None) -> Upload:
    """A JSON body's decoded file as the plain upload value the glue's `prepare` takes (a
    multipart body's file parts become one when its form is validated)."""
    return Upload(data, filename, content_type)


def decode_file(field: str, value: Any, max_bytes: int) -> Any:
    """A JSON field holding a file (base64, or a base64 `data:` URL) as an upload value."""
    if not isinstance(value, str):
        raise BadRequestError(
            f"Field {field!r} must be the file as a base64 string or a base64 data URL, "
            f"got {type(value).__name__}."
        )
    content_type = None
    match = _DATA_URL.match(value)
    if match is not None:
        content_type = match.group("type")
        value = value[match.end() :]
    elif value.startswith("data:"):
        raise BadRequestError(f"Field {field!r}: a data URL must be base64 (';base64,').")
    text = "".join(value.split())
    if len(text) // 4 * 3 > max_bytes:
        raise PayloadTooLargeError(
            f"The {field} file is over the limit max_request_bytes={max_bytes}."
        )
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"Field {field!r} is not valid base64: {exc}.") from None
    if len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"The {field} file is over the limit max_request_bytes={max_bytes}."
        )
    return as_upload(data, field, content_type)


def _form_value(spec: PipelineSpec, name: str, value: Any) -> Any:
    """A JSON value for a field that multipart would carry as text (`metadata`, flags...)."""
    info = spec.request.model_fields.get(name)
    if info is None or info.annotation is not str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _from_json(spec: PipelineSpec, raw: bytes, limits: Limits) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadRequestError(f"The body must be a JSON object, got {type(data).__name__}.")
    files = spec.upload_fields
    if not files:
        return data
    return {
        name: decode_file(name, value, limits.max_request_bytes)
        if name in files
        else _form_value(spec, name, value)
        for name, value in data.items()
    }


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    return content_type in ("", "application/json") or content_type.endswith("+json")


async def read_request(request: Request, spec: PipelineSpec, limits: Limits) -> RequestModel:
    """The request model of the body, JSON or (for upload pipelines) multipart."""
    content_type = _content_type(request)
    if content_type == "multipart/form-data" and spec.upload_fields:
        form = await request.form(
            max_files=len(spec.upload_fields) + 1, max_part_size=limits.max_request_bytes
        )
        data: dict[str, Any] = dict(form.items())
    elif is_json(content_type):
        raw = await request.body()
        if len(raw) > _OFF_LOOP_BYTES:
            data = await asyncio.to_thread(_from_json, spec, raw, limits)
        else:
            data = _from_json(spec, raw, limits)
    else:
        accepted = "application/json" + (" or multipart/form-data" if spec.upload_fields else "")
        raise UnsupportedMediaError(
            f"Content-Type {content_type!r} is not accepted here: send {accepted}."
        )
    try:
        return spec.request.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationFailed(
            exc.errors(include_url=False, include_context=False, include_input=False)
        ) from None
