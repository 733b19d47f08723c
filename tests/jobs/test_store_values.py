"""What a job store writes always saves, on SQLite and the real PostgreSQL alike: a NUL
character (U+0000, which PostgreSQL refuses in text and jsonb, and the tiny LLM sometimes
writes) is removed from every string; a page's queue positions take one query; SQLite files
opened by several stores at once open."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapter.jobs.model import JobStatus
from adapter.jobs.store.base import JobStore
from adapter.jobs.store.migrations import LATEST
from tests.support.jobs_store import TickingClock, make_store, new_job

pytestmark = pytest.mark.anyio
HOOK = "https://example.com/hook"
NUL = "\x00"


async def test_nul_characters_are_removed_from_everything_stored(
    store: JobStore, clock: TickingClock
) -> None:
    job = new_job(params={"prompt": f"a{NUL}b", "list": [f"x{NUL}", 1]}, webhook=HOOK)
    job.metadata[f"k{NUL}ey"] = {"deep": f"v{NUL}"}
    created, _ = await store.create(job)
    assert created.params == {"prompt": "ab", "list": ["x", 1]}
    assert created.metadata == {"tag": "test", "key": {"deep": "v"}}
    assert await store.get(job.id) == created
    claimed = await store.claim("w1", 60)
    assert claimed is not None
    # What an LLM answered, NUL and all, as the runner saves it.
    text = f"Hello{NUL} world{NUL}"
    data = {"text": text, "choices": [{"message": {"content": text}}]}
    payload = {"type": "job.succeeded", "result": {"data": data}}
    ended = await store.finish(
        job.id, "w1", JobStatus.SUCCEEDED, result_data=data, webhook_payload=payload
    )
    assert ended is not None
    assert ended.result_data == {
        "text": "Hello world",
        "choices": [{"message": {"content": "Hello world"}}],
    }
    assert await store.get(job.id) == ended
    (delivery,) = await store.due_deliveries(clock.advance(1), 10)
    assert delivery.payload["result"]["data"]["text"] == "Hello world"
    await store.reschedule_delivery(delivery.id, None, f"receiver said {NUL}")


async def test_an_error_with_nul_is_saved(store: JobStore) -> None:
    job, _ = await store.create(new_job(max_attempts=1))
    await store.claim("w1", 60)
    ended = await store.finish(job.id, "w1", JobStatus.FAILED, error=f"bad{NUL} output")
    assert ended is not None and ended.error == "bad output"
    again, _ = await store.create(new_job(max_attempts=1))
    await store.claim("w1", 60)
    failed = await store.requeue(again.id, "w1", f"out{NUL}age")
    assert failed is not None and failed.error == "outage"
    assert (await store.get(again.id)) == failed


async def test_queue_positions_of_a_page_in_one_call(store: JobStore) -> None:
    ids = [(await store.create(new_job(f"owner{i % 2}")))[0].id for i in range(5)]
    await store.claim("w1", 60)  # the oldest runs: the others move up
    positions = await store.queue_positions([*ids, "job_unknown"])
    assert positions == {ids[1]: 0, ids[2]: 1, ids[3]: 2, ids[4]: 3}
    assert await store.queue_positions([]) == {}
    for job_id in ids:
        assert await store.queue_position(job_id) == positions.get(job_id)


async def test_many_sqlite_stores_opening_a_new_file_at_once_all_open(tmp_path: Path) -> None:
    # Switching a new file to WAL is answered "database is locked" at once, busy_timeout or
    # not, when another store switches it at the same moment: opening retries it.
    for round_ in range(30):
        stores = [
            make_store(f"sqlite:///{tmp_path / f'{round_}.db'}", TickingClock()) for _ in range(6)
        ]
        try:
            await asyncio.gather(*(store.open() for store in stores))
            assert {await store.schema_version() for store in stores} == {LATEST}
        finally:
            await asyncio.gather(*(store.close() for store in stores))
