"""The durable job store: SQLite in the data directory by default, PostgreSQL by URL (for several
replicas sharing one queue). Both keep the same semantics (adapter/jobs/store/base.py)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from adapter.jobs.store.base import JobStore
from adapter.jobs.store.common import PayloadBuilder, default_payload
from contract.errors import ConfigError

__all__ = ["JobStore", "open_store"]

DATABASE_URL_ENV = "ADAPTER_JOBS_DATABASE_URL"


def open_store(
    database_url: str | None,
    data_dir: Path,
    *,
    webhook_payload: PayloadBuilder = default_payload,
) -> JobStore:
    """The store the URL names (not yet opened: `await store.open()` connects and migrates).

    None or "": SQLite at <data_dir>/jobs.sqlite3. `sqlite:///jobs.db` is a path relative to
    the working directory and `sqlite:////var/lib/jobs.db` an absolute one (SQLAlchemy's
    convention). `postgresql://user@host:5432/db` (or `postgres://`) is PostgreSQL, with any of
    libpq's parameters in the query string. `webhook_payload` builds the body of the webhook
    event of a job the store itself ends (a cancel before it started, a worker that died).
    """
    from adapter.jobs.store.sqlite import FILE_NAME, SqliteJobStore

    if not database_url:
        return SqliteJobStore(data_dir / FILE_NAME, webhook_payload=webhook_payload)
    scheme = urlsplit(database_url).scheme.lower()
    if scheme == "sqlite":
        prefix = "sqlite:///"
        if not database_url.startswith(prefix) or len(database_url) == len(prefix):
            raise ConfigError(
                f"{DATABASE_URL_ENV} must be sqlite:///relative/path or sqlite:////absolute/path,"
                f" not {database_url!r}."
            )
        path = Path(database_url[len(prefix) :].split("?", 1)[0])
        return SqliteJobStore(path, webhook_payload=webhook_payload)
    if scheme in ("postgresql", "postgres"):
        from adapter.jobs.store.postgres import PostgresJobStore

        return PostgresJobStore(database_url, webhook_payload=webhook_payload)
    shown = scheme or database_url
    raise ConfigError(
        f"{DATABASE_URL_ENV}: unknown database {shown!r}; use postgresql://... or sqlite:///..."
        " (or leave it empty for SQLite in ADAPTER_DATA_DIR)."
    )
