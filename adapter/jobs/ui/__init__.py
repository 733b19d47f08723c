"""The jobs page at /ui: index.html, app.js and style.css (package data), served by `page`."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI

from adapter.jobs import catalog
from adapter.jobs.settings import JobsSettings
from adapter.jobs.ui.page import build_ui_router, content_security_policy

__all__ = ["build_ui_router", "content_security_policy", "install_page", "output_origins"]

# Where AWS S3 serves presigned links when no endpoint is configured.
AWS_S3_ORIGINS = ("https://*.amazonaws.com",)


def output_origins(jobs: JobsSettings) -> tuple[str, ...]:
    """The origins the page loads outputs from besides its own: where an S3-compatible store's
    presigned links point (the output routes redirect there); none when the adapter serves the
    files itself (a local directory, or ADAPTER_JOBS_S3_PRESIGN=false)."""
    if not jobs.outputs_url.startswith("s3://") or not jobs.s3_presign:
        return ()
    endpoint = urlsplit(jobs.s3_public_url or jobs.s3_endpoint_url)
    if not endpoint.scheme:
        return AWS_S3_ORIGINS
    return (f"{endpoint.scheme}://{endpoint.netloc}",)


def install_page(app: FastAPI, jobs: JobsSettings) -> None:
    """The pipeline catalog and the page. Before the jobs routes, whose /v1/jobs/{id} would take
    "pipelines" for an id, and before the OpenAI door mounted at /v1."""
    app.include_router(catalog.router)
    app.include_router(build_ui_router(output_origins(jobs)))
