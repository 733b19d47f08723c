"""The app factory: configuration, backend and service wired into one FastAPI app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from adapter import __version__
from adapter.backends.base import Backend
from adapter.backends.local import LocalBackend
from adapter.errors import install_error_handlers
from adapter.live_runner import LiveRunner
from adapter.metrics import router as metrics_router
from adapter.openai.routes import MOUNT_PATH, build_openai_app
from adapter.service import RunnerService
from adapter.settings import Settings, demo_entries
from adapter.web import generate, system
from adapter.web.auth import install_bearer_auth
from adapter.web.body_limit import install_body_limit
from adapter.web.shutdown import ShutdownAnswerMiddleware
from adapter.web.timeouts import install_body_timeout
from contract.aimodels import ServedModel, load_models_file, merge_entries

logger = logging.getLogger(__name__)

# How long the backend may take to close at shutdown, after the drain: the process must be gone
# before the platform's own kill (docker stop 10 s, Kubernetes and Modal 30 s).
BACKEND_CLOSE_S = 3.0


def load_models(settings: Settings) -> list[ServedModel]:
    if settings.models_config is None:
        logger.warning(
            "ADAPTER_MODELS_CONFIG is not set: serving the built-in demo models (random "
            "weights: they draw noise and write gibberish)"
        )
        return merge_entries(demo_entries(settings), "built-in demo configuration")
    return load_models_file(settings.models_config)


def build_backend(settings: Settings, models: list[ServedModel]) -> Backend:
    """The backend `settings.backend` names; the Modal one is imported only when chosen."""
    if settings.backend == "modal":
        from adapter.backends.modal import ModalBackend

        return ModalBackend(settings, models)
    if settings.backend == "http":
        from adapter.backends.http import HTTPBackend

        return HTTPBackend(settings, models)
    return LocalBackend(settings, models)


def create_app(
    settings: Settings,
    models: list[ServedModel] | None = None,
    backend: Backend | None = None,
) -> FastAPI:
    """Build the app. Bad configuration raises ConfigError here, before the port opens."""
    models = load_models(settings) if models is None else models
    backend = build_backend(settings, models) if backend is None else backend
    backend.check(models)
    service = RunnerService(settings, models, backend)
    if not service.tokens:
        logger.warning("no token configured: generate routes are open to anyone")
    live_runner = LiveRunner.from_settings(settings, service)

    jobs = None
    if settings.jobs.enabled:
        from adapter.jobs.app import build_door

        jobs = build_door(settings, service)

    worker = None
    if settings.workerbee.url:
        from adapter.workerbee.worker import WorkerBee

        worker = WorkerBee(settings, service)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        if worker is not None:
            await worker.start()
        try:
            if live_runner is not None:
                await live_runner.start()
            if jobs is not None:
                await jobs.start()
            yield
        finally:
            if jobs is not None:
                await jobs.close()
            if live_runner is not None:
                await live_runner.close()
            if worker is not None:
                await worker.stop()
            try:
                await asyncio.wait_for(backend.close(), BACKEND_CLOSE_S)
            except TimeoutError:
                logger.warning("the backend took over %g s to close: left as is", BACKEND_CLOSE_S)

    app = FastAPI(
        title="Livepeer AI Runner",
        description="Livepeer AI runner contract, served by modal-ai-runner",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.workerbee = worker
    app.state.jobs = jobs
    errors = install_error_handlers(app, declared_only=settings.declared_statuses_only)
    install_body_limit(
        app,
        settings.limits.max_request_bytes,
        settings.limits.max_json_request_bytes,
        errors.response,
    )
    # Each add_middleware wraps what was added before: the body is bounded in bytes and time,
    # the token is checked before any of it is read, and a request the shutdown stops is
    # answered 500 in the contract's words.
    install_body_timeout(app, settings.body_timeout_s, errors.response)
    install_bearer_auth(
        app, service.tokens, errors.response, also=jobs.guarded_paths() if jobs else None
    )
    app.add_middleware(ShutdownAnswerMiddleware, refuse=errors.response)
    app.include_router(generate.build_router(declared_only=settings.declared_statuses_only))
    app.include_router(system.router)
    app.include_router(metrics_router)
    if jobs is not None:
        from adapter.jobs.app import install_jobs
        from adapter.jobs.ui import install_page

        install_page(app, settings.jobs)  # the catalog first: /v1/jobs/{id} would take its path
        install_jobs(app, jobs)  # before the OpenAI door's mount at /v1
    app.mount(MOUNT_PATH, build_openai_app(service))
    if live_runner is not None:
        # Last, so it wraps every other middleware (the door has no bearer token).
        live_runner.install(app)
    return app
