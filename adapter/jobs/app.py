"""The jobs door built from the settings and installed on the main app."""

from __future__ import annotations

from fastapi import FastAPI

from adapter.jobs.door import JobsDoor
from adapter.jobs.outputs import open_outputs
from adapter.jobs.routes import build_router
from adapter.jobs.runner import JobRunner
from adapter.jobs.store import open_store
from adapter.jobs.views import webhook_body
from adapter.jobs.webhooks import WebhookSender
from adapter.service import RunnerService
from adapter.settings import Settings


def build_door(settings: Settings, service: RunnerService) -> JobsDoor:
    """The store, output store and runner the settings name; nothing is opened yet (start)."""
    jobs = settings.jobs
    store = open_store(jobs.database_url, settings.data_dir, webhook_payload=webhook_body)
    outputs = open_outputs(
        jobs.outputs_url,
        settings.data_dir,
        s3_endpoint_url=jobs.s3_endpoint_url or None,
        s3_region=jobs.s3_region or None,
        s3_public_endpoint_url=jobs.s3_public_url or None,
        s3_presign=jobs.s3_presign,
    )
    runner = JobRunner(jobs, service, store, outputs)
    runner.webhook_payload = webhook_body
    sender = None
    secret = jobs.webhook_secret.get_secret_value()
    if secret:
        sender = WebhookSender(
            store,
            secret=secret,
            timeout_s=jobs.webhook_timeout_s,
            max_attempts=jobs.webhook_max_attempts,
            backoff_base_s=jobs.webhook_backoff_base_s,
            backoff_cap_s=jobs.webhook_backoff_cap_s,
            concurrency=jobs.webhook_concurrency,
            poll_interval_s=jobs.webhook_poll_s,
        )
        runner.on_webhook = sender.wake
    return JobsDoor(settings, service, store, outputs, runner, sender)


def install_jobs(app: FastAPI, door: JobsDoor) -> None:
    """The door's routes; before the OpenAI door's mount at /v1, which would take the paths."""
    app.state.jobs = door
    app.include_router(build_router())
