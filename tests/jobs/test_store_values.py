"""What a job store writes always saves, on SQLite and the real PostgreSQL alike: a NUL
character (U+0000, which PostgreSQL refuses in text and jsonb, and the tiny LLM sometimes
writes) is removed from every string; a job's queue position is read in the same snapshot as
the job; SQLite files opened by several stores at once open."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapter.jobs.model import JobQuery, JobStatus
from adapter.jobs.store import sql
from adapter.jobs.store.base import JobStore
from adapter.jobs.store.migrations import LATEST
from tests.support.jobs_store import TickingClock, make_store, new_job, raw_rows

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


async def test_a_pages_queue_positions_come_with_it(store: JobStore) -> None:
    ids = [(await store.create(new_job(f"owner{i % 2}")))[0].id for i in range(5)]
    await store.claim("w1", 60)  # the oldest runs: the others move up
    page = await store.page(JobQuery(limit=10))
    assert [job.id for job in page.jobs] == ids[::-1]
    assert page.positions == {ids[1]: 0, ids[2]: 1, ids[3]: 2, ids[4]: 3}
    for job_id in ids:
        placed = await store.get_placed(job_id)
        assert placed is not None and placed[1] == page.positions.get(job_id)
    running = await store.page(JobQuery(status=JobStatus.RUNNING))
    assert [job.id for job in running.jobs] == [ids[0]] and running.positions == {}


async def test_a_job_claimed_between_the_two_reads_still_shows_its_place(
    store: JobStore, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job and its position are read in one snapshot. Another replica claims a job after
    the store read the job and before it reads the positions (here, as the positions' SQL is
    built): the answer is still the job as queued with its place, never queued with none."""
    ids = [(await store.create(new_job()))[0].id for _ in range(3)]
    to_claim = [ids[0], ids[1]]
    build = sql.queue_positions

    def claimed_meanwhile(m: str, count: int) -> str:
        if to_claim:
            job_id = to_claim.pop(0)
            raw_rows(url, f"UPDATE jobs SET status = 'running' WHERE id = '{job_id}'")
        return build(m, count)

    monkeypatch.setattr(sql, "queue_positions", claimed_meanwhile)
    page = await store.page(JobQuery(status=JobStatus.QUEUED))
    assert [job.id for job in page.jobs] == ids[::-1]
    assert page.positions == {ids[0]: 0, ids[1]: 1, ids[2]: 2}
    placed = await store.get_placed(ids[1])
    assert placed is not None
    assert (placed[0].status, placed[1]) == (JobStatus.QUEUED, 0)  # ids[0] runs by now
    assert to_claim == []  # both claims happened inside the reads
    placed = await store.get_placed(ids[1])
    assert placed is not None and (placed[0].status, placed[1]) == (JobStatus.RUNNING, None)


async def test_a_failed_read_raises_its_own_error_and_leaves_no_transaction_open(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, _ = await store.create(new_job())

    def broken(m: str, count: int) -> str:
        raise ValueError("the positions' query could not be built")

    monkeypatch.setattr(sql, "queue_positions", broken)
    with pytest.raises(ValueError, match="could not be built"):
        await store.page(JobQuery())
    monkeypatch.undo()
    claimed = await store.claim("w1", 60)  # a write after it: the read's transaction is over
    assert claimed is not None and claimed.id == job.id


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
