"""The Live Runner door: one single-shot app per served model, under its own path prefix.

Every app serves its pipeline's batch route (the JSON or multipart body go-livepeer's batch
clients send, plus JSON with base64 uploads) and a health endpoint whose *status code* tells the
truth. Requests go through `RunnerService.handle`/`stream` like the batch routes, so routing,
limits, capacity and the error tree are the same; only the statuses differ: nothing becomes a
"declared" status here (overload stays 503 with Retry-After, which reaches the client unchanged
through the orchestrator), and 402, 480 and 482 never leave the door (Livepeer's gateway SDK reads
them as payment and signer signals).
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.backends.base import ModelState
from adapter.errors import error_response
from adapter.live_runner.apps import HEALTH_PATH, MAIN_PREFIX, LiveApp
from adapter.live_runner.bodies import RequestValidationFailed, max_body_bytes, read_request
from adapter.service import RunnerService
from adapter.web.body_limit import install_body_limit
from adapter.web.disconnect import cancel_on_disconnect
from adapter.web.streaming import event_stream, wants_stream
from contract.errors import BadRequestError, InferenceError, RunnerError, error_body
from contract.pipelines import PIPELINE_SPECS, requested_model_id
from contract.schemas import HealthStatus, RequestModel

logger = logging.getLogger(__name__)

# Statuses Livepeer's gateway SDK gives a meaning of its own: payment challenge, signer refresh,
# skip payment cycle. An upstream's answer with one of them leaves the door as a 500.
SDK_RESERVED_STATUSES = frozenset({402, 480, 482})

# A model's state -> (health status code, HealthStatus). A cold model serves (it loads on its
# first request); a loading or failed one cannot serve now.
HEALTH_BY_STATE: dict[ModelState, tuple[int, HealthStatus]] = {
    ModelState.READY: (200, HealthStatus.OK),
    ModelState.COLD: (200, HealthStatus.IDLE),
    ModelState.LOADING: (503, HealthStatus.LOADING),
    ModelState.FAILED: (503, HealthStatus.ERROR),
}


def door_status(status: int) -> int:
    return 500 if status in SDK_RESERVED_STATUSES else status


def door_error_response(error: RunnerError) -> Response:
    """The contract's error body with the error's own status (never a declared stand-in)."""
    return error_response(error, door_status(error.status_code))


def app_health(service: RunnerService, app: LiveApp) -> tuple[int, HealthStatus]:
    """The app's health from its model's state alone: no lock, no wait, no GPU."""
    return HEALTH_BY_STATE[service.backend.state(app.model)]


def for_app(app: LiveApp, request: RequestModel) -> RequestModel:
    """The request routed to the app's model; naming another model is the client's mistake."""
    spec = PIPELINE_SPECS[app.pipeline]
    named = requested_model_id(spec, request)
    if named and named != app.model.model_id:
        raise BadRequestError(
            f"This app serves {app.model.model_id} ({app.app_id}); the request names {named}."
        )
    return request.model_copy(update={spec.model_field: app.model.model_id})


def build_app(service: RunnerService, app: LiveApp) -> FastAPI:
    """The single-shot app of one served model, below its prefix."""
    spec = PIPELINE_SPECS[app.pipeline]
    limits = service.settings.limits
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def generate(request: Request) -> Response:
        body = for_app(app, await read_request(request, spec, limits))
        if wants_stream(body):
            return await cancel_on_disconnect(request, event_stream(service.stream(spec, body)))
        result = await cancel_on_disconnect(request, service.handle(spec, body))
        return Response(result.model_dump_json(), media_type="application/json")

    async def health(_request: Request) -> Response:
        status_code, status = app_health(service, app)
        headers = {"Retry-After": str(service.settings.retry_after_s)} if status_code != 200 else {}
        return JSONResponse({"status": status.value}, status_code=status_code, headers=headers)

    for path in (app.route, app.route + "/"):
        api.add_api_route(path, generate, methods=["POST"], include_in_schema=False)
    # GET as go-livepeer polls it; any other method too (the SDK sends `{}` even with GET).
    api.add_api_route(HEALTH_PATH, health, methods=["GET", "HEAD", "POST"])

    async def on_runner_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RunnerError)
        return door_error_response(exc)

    async def on_invalid(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationFailed)
        return JSONResponse({"detail": exc.errors}, status_code=422)

    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"Not found: {app.app_id} serves POST {app.route} and GET {HEALTH_PATH}."
        return JSONResponse(error_body(message), exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unexpected error serving %s", app.app_id, exc_info=exc)
        return door_error_response(InferenceError(spec.failure_message))

    api.add_exception_handler(RunnerError, on_runner_error)
    api.add_exception_handler(RequestValidationFailed, on_invalid)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(Exception, on_unexpected)
    max_bytes, max_json_bytes = max_body_bytes(spec, limits)
    install_body_limit(
        api, max_bytes, max_json_bytes, lambda error, _scope: door_error_response(error)
    )
    return api


async def _not_found(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    if scope["type"] != "http":
        return
    await JSONResponse(error_body(message), status_code=404)(scope, receive, send)


class Door:
    """The door's root: checks the path secret, then hands each request to its app.

    An app sees its own prefix as `root_path`, so its routes are those of a lone app. A path
    without the secret gets a bare 404 that reveals nothing about what is served.
    """

    def __init__(self, service: RunnerService, apps: list[LiveApp], path_secret: str) -> None:
        self.apps = apps
        self.secret = path_secret
        # Longest prefix first, so a model id that extends another's still reaches its own app.
        self._routes: list[tuple[str, ASGIApp]] = sorted(
            ((app.prefix, build_app(service, app)) for app in apps),
            key=lambda route: len(route[0]),
            reverse=True,
        )

    def _strip_secret(self, path: str) -> str | None:
        if not self.secret:
            return path
        head, _, rest = path.lstrip("/").partition("/")
        if not secrets.compare_digest(head.encode(), self.secret.encode()):
            return None
        return "/" + rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        root_path = scope.get("root_path", "")
        full = scope["path"]
        below_root = full[len(root_path) :] if full.startswith(root_path) else full
        path = self._strip_secret(below_root)
        if path is None:
            await _not_found(scope, receive, send, "Not found.")
            return
        secret_part = below_root[: len(below_root) - len(path)] if self.secret else ""
        for prefix, app in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                child = dict(scope, root_path=root_path + secret_part + prefix)
                await app(child, receive, send)
                return
        served = ", ".join(app.prefix for app in self.apps)
        await _not_found(scope, receive, send, f"No Live Runner app at {path}; apps: {served}.")


class DoorOnMain:
    """ASGI middleware that serves the door under /live-runner on the adapter's own port.

    It must wrap everything else (bearer auth, the batch body limit): the orchestrator sends no
    Authorization header, and the door has limits of its own.
    """

    def __init__(self, app: ASGIApp, door: Door) -> None:
        self.app = app
        self.door = door

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            root_path = scope.get("root_path", "")
            path = scope["path"][len(root_path) :] if scope["path"].startswith(root_path) else ""
            if path == MAIN_PREFIX or path.startswith(MAIN_PREFIX + "/"):
                await self.door(dict(scope, root_path=root_path + MAIN_PREFIX), receive, send)
                return
        await self.app(scope, receive, send)
