"""Helpers of the job store's tests: a clock the test drives, a throwaway PostgreSQL schema per
test, jobs to submit, and raw reads of a store's tables."""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from adapter.jobs.model import NewJob
from adapter.jobs.store.base import JobStore
from adapter.jobs.store.common import Clock

# The test server (trust auth); TEST_POSTGRES_URL points the tests at another one.
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START = datetime(2026, 1, 1, tzinfo=UTC)


class TickingClock:
    """Each reading is 1 ms after the last (so rows get distinct, ordered times); `advance`
    jumps ahead. Shared by threads (SQLite's calls run in worker threads)."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now

    def peek(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


def pg_unreachable_reason() -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it can."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is unreachable ({type(exc).__name__}: {exc})"
    return None


def create_pg_schema() -> str:
    """A fresh, uniquely named schema (parallel runs never share one)."""
    import psycopg

    name = f"jobs_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name


def drop_pg_schema(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def schema_url(schema: str) -> str:
    """PG_URL with the schema first on the search path (libpq's `options` parameter)."""
    options = quote(f"-csearch_path={schema}", safe="")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={options}"


def make_store(url: str, clock: Clock) -> JobStore:
    """A store of the URL (sqlite:////abs/path or postgresql://...) reading the given clock."""
    if url.startswith("sqlite:"):
        from adapter.jobs.store.sqlite import SqliteJobStore

        return SqliteJobStore(Path(url.removeprefix("sqlite:///")), clock=clock)
    from adapter.jobs.store.postgres import PostgresJobStore

    return PostgresJobStore(url, clock=clock)


def raw_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query straight from the database, around the store."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            rows = [tuple(row) for row in conn.execute(sql)]
            conn.commit()
            return rows
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as pg:  # committed on leaving
        cur = pg.execute(sql)
        return [tuple(row) for row in cur] if cur.description else []


_counter = iter(range(1, 1_000_000))


def new_job(
    owner: str = "alice",
    *,
    pipeline: str = "text-to-image",
    model_id: str = "demo/tiny-sd",
    max_attempts: int = 3,
    webhook: str | None = None,
    idempotency_key: str | None = None,
    params: dict[str, Any] | None = None,
) -> NewJob:
    """A job with a fresh id that sorts after the previous one."""
    return NewJob(
        id=f"job_{next(_counter):08d}{uuid.uuid4().hex[:6]}",
        owner=owner,
        pipeline=pipeline,
        model_id=model_id,
        params=params if params is not None else {"prompt": "a red fox", "steps": 2},
        max_attempts=max_attempts,
        metadata={"tag": "test"},
        webhook=webhook,
        idempotency_key=idempotency_key,
    )
