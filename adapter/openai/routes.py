"""The OpenAI-compatible door: an app of its own, mounted at /v1 beside the runner routes.

It has its own error handlers (OpenAI's error shape, not the runner contract's) and bearer
auth over the service's tokens; everything else (routing, capacity, limits, metrics) is the
one `RunnerService`'s, which the routes call exactly as the runner routes do.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from adapter.openai.audio import TranscriptionRequest, transcribe
from adapter.openai.chat import complete, completion_json, stream_chunks
from adapter.openai.chat_request import parse_chat_request
from adapter.openai.errors import (
    SERVER_ERROR,
    SERVER_ERROR_MESSAGE,
    OpenAIError,
    from_runner_error,
    invalid,
    invalid_at,
    unauthorized,
)
from adapter.openai.images import generate_images, parse_image_request
from adapter.openai.models import get_model, list_models
from adapter.web.disconnect import cancel_on_disconnect
from contract.errors import RunnerError

if TYPE_CHECKING:
    from adapter.service import RunnerService

logger = logging.getLogger(__name__)

MOUNT_PATH = "/v1"


def error_response(error: OpenAIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


def _service(request: Request) -> RunnerService:
    return request.app.state.service  # type: ignore[no-any-return]


async def require_token(request: Request) -> None:
    """Bearer auth with the tokens of the runner routes (none configured: open)."""
    tokens: tuple[str, ...] = _service(request).tokens
    if not tokens:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    presented = given.strip().encode()
    # Compared with every token, without stopping early, so timing reveals nothing.
    matches = [secrets.compare_digest(presented, token.encode()) for token in tokens]
    if scheme.lower() != "bearer" or not presented or not any(matches):
        raise unauthorized()


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid(
            "We could not parse the JSON body of your request. Send valid JSON with "
            "Content-Type: application/json."
        ) from None


def data_event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


class ChunkStream(StreamingResponse):
    """Server-sent `chat.completion.chunk`s then `data: [DONE]`; an error once streaming has
    begun is sent as `data: {"error": {...}}` and ends the stream, as OpenAI does. The chunk
    generator is always closed, which stops the generation and frees the slot."""

    def __init__(self, first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]) -> None:
        super().__init__(
            self._events(first, chunks),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.chunks = chunks

    @staticmethod
    async def _events(
        first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[str]:
        try:
            yield data_event(first)
            async for chunk in chunks:
                yield data_event(chunk)
        except OpenAIError as exc:
            yield data_event(exc.body())
            return
        except Exception:
            logger.exception("chat completion stream failed")
            yield data_event(OpenAIError(500, SERVER_ERROR_MESSAGE, SERVER_ERROR).body())
            return
        yield "data: [DONE]\n\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for iterator in (self.body_iterator, self.chunks):
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    await close()


async def _first(chunks: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await anext(chunks)


router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    service = _service(request)
    body = parse_chat_request(await json_body(request))
    if body.stream:
        chunks = stream_chunks(service, body)
        try:
            # Until the first chunk, a refusal keeps its own status code.
            first = await cancel_on_disconnect(request, _first(chunks))
        except BaseException:
            await chunks.aclose()
            raise
        return ChunkStream(first, chunks)
    completion = await cancel_on_disconnect(request, complete(service, body))
    return JSONResponse(completion_json(completion))


@router.get("/models")
async def models(request: Request) -> JSONResponse:
    return JSONResponse(list_models(_service(request), request.app.state.created))


@router.get("/models/{model_id:path}")
async def model(request: Request, model_id: str) -> JSONResponse:
    return JSONResponse(get_model(_service(request), model_id, request.app.state.created))


@router.post("/images/generations")
async def images_generations(request: Request) -> JSONResponse:
    body = parse_image_request(await json_body(request))
    answer = await cancel_on_disconnect(request, generate_images(_service(request), body))
    return JSONResponse(answer)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@router.post("/audio/transcriptions")
async def audio_transcriptions(request: Request) -> Response:
    form = await request.form()
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("Send the audio as the multipart file field 'file'.", "file")
        granularities = [
            _text(value)
            for name in ("timestamp_granularities[]", "timestamp_granularities")
            for value in form.getlist(name)
        ]
        transcription = TranscriptionRequest(
            data=await upload.read(),
            filename=upload.filename,
            content_type=upload.content_type,
            model=_text(form.get("model")),
            response_format=_text(form.get("response_format")) or "json",
            timestamp_granularities=granularities,
            language=_text(form.get("language")),
        )
    finally:
        await form.close()
    media_type, answer = await cancel_on_disconnect(
        request, transcribe(_service(request), transcription)
    )
    if isinstance(answer, str):
        return PlainTextResponse(answer, media_type=media_type)
    return JSONResponse(answer)


async def _openai_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIError)
    return error_response(exc)


async def _runner_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunnerError)
    return error_response(from_runner_error(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
        return error_response(OpenAIError(404, message, code="unknown_url"))
    kind = SERVER_ERROR if exc.status_code >= 500 else "invalid_request_error"
    return error_response(OpenAIError(exc.status_code, str(exc.detail), kind))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    return error_response(invalid_at(tuple(first.get("loc", ())), first.get("msg", "invalid")))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error serving %s", request.url.path, exc_info=exc)
    return error_response(OpenAIError(500, SERVER_ERROR_MESSAGE, SERVER_ERROR))


def build_openai_app(service: RunnerService) -> FastAPI:
    """The door's app, to mount at `MOUNT_PATH` on the service's app."""
    door = FastAPI(
        title="OpenAI-compatible API",
        description="OpenAI's chat, images, audio and models routes over the runner service",
        redoc_url=None,
    )
    door.state.service = service
    # `created` of every listed model: when this service started serving them.
    door.state.created = int(time.time())
    door.add_exception_handler(OpenAIError, _openai_error)
    door.add_exception_handler(RunnerError, _runner_error)
    door.add_exception_handler(HTTPException, _http_error)
    door.add_exception_handler(RequestValidationError, _validation_error)
    door.add_exception_handler(Exception, _unexpected_error)
    door.include_router(router)
    return door
