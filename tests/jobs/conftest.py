"""The job store under test, shared by the store modules: each test runs once on SQLite (a file
in tmp_path) and once on the real PostgreSQL server (a fresh schema), reading a clock the test
moves. A module with its own `store` fixture (test_outputs.py) keeps its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapter.jobs.store.base import JobStore
from tests.support.jobs_store import TickingClock, make_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
async def store(url: str, clock: TickingClock) -> AsyncIterator[JobStore]:
    store = make_store(url, clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
