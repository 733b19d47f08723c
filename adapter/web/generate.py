"""One POST route per pipeline of the spec, each validated by its schema from contract.schemas.

A route whose pipeline is not configured still validates its body and then answers the
contract's 400 naming what is served, rather than 404.
"""

# No `from __future__ import annotations` here: the endpoints' annotations are built at run time
# from the schema table and FastAPI must see them as objects.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from adapter.errors import route_error_statuses
from adapter.web.auth import bearer_token_required
from adapter.web.disconnect import cancel_on_disconnect
from adapter.web.streaming import event_stream, wants_stream
from contract.pipelines import PIPELINE_SPECS, PipelineSpec
from contract.schemas import HTTPError, RequestModel

_ERROR_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _endpoint(spec: PipelineSpec) -> Any:
    body_type: Any = (
        spec.request
        if spec.body == "json"
        else Annotated[spec.request, Form(media_type="multipart/form-data")]
    )

    async def generate(request: Request, body: body_type) -> Response:
        assert isinstance(body, RequestModel)
        service = request.app.state.service
        if wants_stream(body):
            # Until the first event, a client leaving is seen here; after it, by the stream.
            return await cancel_on_disconnect(request, event_stream(service.stream(spec, body)))
        result = await cancel_on_disconnect(request, service.handle(spec, body))
        # pydantic's own serializer: 5x faster than json.dumps on a response holding a
        # megabyte of data URL (BENCHMARKS.md, case f).
        return Response(result.model_dump_json(), media_type="application/json")

    generate.__name__ = spec.operation_id
    return generate


def build_router(declared_only: bool = True) -> APIRouter:
    router = APIRouter(tags=["generate"])
    for spec in PIPELINE_SPECS.values():
        statuses = route_error_statuses(spec.pipeline, declared_only)
        responses: dict[int | str, dict[str, Any]] = {
            status: {"model": HTTPError, "description": _ERROR_DESCRIPTIONS[status]}
            for status in statuses
        }
        endpoint = _endpoint(spec)
        path = f"/{spec.pipeline.value}"
        auth = [Depends(bearer_token_required(spec.unauthorized_msg))]
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            dependencies=auth,
            response_model=spec.response,
            responses=responses,
            summary=spec.summary,
            description=spec.description,
            operation_id=spec.operation_id,
        )
        # The runner answers with a trailing slash too, outside the schema.
        router.add_api_route(
            path + "/", endpoint, methods=["POST"], dependencies=auth, include_in_schema=False
        )
    return router
