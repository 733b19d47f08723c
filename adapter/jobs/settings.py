"""The jobs door's settings (`ADAPTER_JOBS_*`), nested in `Settings` as `jobs`; the data folder
they default into is `Settings.data_dir` (`ADAPTER_DATA_DIR`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 24 * 3600.0


def default_data_dir() -> Path:
    """Where durable state lives unless ADAPTER_DATA_DIR says otherwise: the XDG data home."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "modal-ai-runner"


class JobsSettings(BaseSettings):
    """The async jobs door (adapter/jobs/, `/v1/jobs` and `/ui`)."""

    model_config = SettingsConfigDict(env_prefix="ADAPTER_JOBS_")

    enabled: bool = Field(True, description="Serve the jobs door (`/v1/jobs`, `/ui`).")
    database_url: str = Field(
        "",
        pattern=r"^((sqlite:///|postgres(ql)?://)\S+)?$",
        description="Where jobs are stored: `sqlite:///<path>` or `postgresql://...` (several "
        "replicas share one); empty: SQLite at <ADAPTER_DATA_DIR>/jobs.sqlite3.",
    )
    outputs_url: str = Field(
        "",
        pattern=r"^((file://|s3://|/)\S*)?$",
        description="Where job outputs and uploads are kept: a folder (`/path` or "
        "`file:///path`) or `s3://<bucket>/<prefix>`; empty: <ADAPTER_DATA_DIR>/outputs.",
    )
    max_queued: int = Field(
        1000, gt=0, description="Most jobs queued at once; beyond, a submit answers 429."
    )
    max_queued_per_token: int | None = Field(
        None,
        gt=0,
        description="Most jobs one token may have queued at once (429 beyond); default: "
        "ADAPTER_JOBS_MAX_QUEUED.",
    )
    concurrency: int | None = Field(
        None,
        gt=0,
        description="Jobs run at once by this adapter; default: the served models' capacity "
        "(their max_in_flight, summed).",
    )
    lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a running job stays this adapter's without a heartbeat (renewed "
        "every third of it); after, another replica (or a restart) takes it over.",
    )
    max_metadata_bytes: int = Field(
        16384,
        gt=0,
        description="Largest `metadata` of one job, as compact JSON in UTF-8 bytes (kept in its "
        "row and returned with every read, list page and webhook); beyond, a submit is a 400.",
    )
    max_attempts: int = Field(
        3, gt=0, description="Runs a job gets (its worker stopped, its model was unavailable)."
    )
    retention_s: float = Field(
        7 * DAY_S, gt=0, description="How long an ended job and its outputs are kept."
    )
    purge_interval_s: float = Field(
        3600.0, gt=0, description="How often ended jobs past their retention are purged."
    )
    poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often an idle runner looks for queued jobs (submits to this adapter "
        "wake it at once) and expired leases, and an event stream for changes.",
    )
    events_max_s: float = Field(
        3600.0, gt=0, description="Longest one event stream stays open (the client reconnects)."
    )
    presigned_url_s: int = Field(
        3600, gt=0, description="How long a presigned output link (S3 outputs) stays valid."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="The key webhook events are signed with (Standard Webhooks); without it a "
        "job that asks for a webhook is refused.",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, lt=60, description="Longest one webhook delivery may take."
    )
    webhook_max_attempts: int = Field(
        12, gt=0, description="Attempts per webhook event before it is given up."
    )
    webhook_backoff_base_s: float = Field(
        5.0, ge=0, description="Wait after a webhook's first failed attempt (then doubled)."
    )
    webhook_backoff_cap_s: float = Field(
        3600.0, gt=0, description="Longest wait between two attempts of one webhook event."
    )
    webhook_concurrency: int = Field(
        8, gt=0, description="Webhook events being sent at once, per adapter process."
    )
    webhook_poll_s: float = Field(
        1.0, gt=0, description="How often the webhook outbox is read for events that are due."
    )
    s3_endpoint_url: str = Field(
        "",
        pattern=r"^(https?://\S+)?$",
        description="S3 outputs: the S3-compatible server's URL (MinIO...); empty: AWS.",
    )
    s3_region: str = Field("", description="S3 outputs: the region; empty: boto3's default.")
    s3_public_url: str = Field(
        "",
        pattern=r"^(https?://\S+)?$",
        description="S3 outputs: the store's address as browsers reach it, for presigned "
        "links (when it differs from ADAPTER_JOBS_S3_ENDPOINT_URL); empty: the same.",
    )
    s3_presign: bool = Field(
        True,
        description="S3 outputs: answer a download with a redirect to a presigned link "
        "(false: the adapter sends the file itself).",
    )

    def queued_per_token(self) -> int:
        return self.max_queued_per_token or self.max_queued
