"""The job store's semantics, one module run against SQLite (a file in tmp_path) and the real
PostgreSQL server (a fresh schema per test): both backends must behave the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from adapter.jobs.model import JobQuery, JobStatus, OutputFile
from adapter.jobs.store import open_store
from adapter.jobs.store.base import JobStore
from adapter.jobs.store.migrations import LATEST, MIGRATIONS
from adapter.jobs.store.sqlite import SqliteJobStore
from contract.errors import BadRequestError, ConfigError, ConflictError, NotFoundError
from tests.support.jobs_store import TickingClock, make_store, new_job, raw_rows

pytestmark = pytest.mark.anyio
HOOK = "https://example.com/hook"


async def test_migrations_applied_twice_are_a_no_op(url: str, clock: TickingClock) -> None:
    # Two stores opening together (two replicas starting), then a third later.
    first, second = make_store(url, clock), make_store(url, clock)
    await asyncio.gather(first.open(), second.open())
    job, _ = await first.create(new_job())
    await asyncio.gather(first.close(), second.close())
    again = make_store(url, clock)
    await again.open()
    try:
        assert await again.schema_version() == LATEST
        assert await again.get(job.id) == job
    finally:
        await again.close()
    rows = raw_rows(url, "SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]


async def test_create_and_get_round_trip(store: JobStore) -> None:
    params = {"prompt": "ünïcode ✓", "nested": {"a": [1, 2.5, None, True]}}
    job, created = await store.create(new_job(params=params, webhook=HOOK))
    assert created
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
    got = await store.get(job.id)
    assert got == job
    assert got.params == params and got.metadata == {"tag": "test"} and got.webhook == HOOK
    assert await store.get("job_missing") is None


async def test_idempotency_key_is_per_owner(store: JobStore) -> None:
    first, created = await store.create(new_job("alice", idempotency_key="k1"))
    again, created_again = await store.create(new_job("alice", idempotency_key="k1"))
    other, created_other = await store.create(new_job("bob", idempotency_key="k1"))
    assert created and not created_again and created_other
    assert again == first and other.id != first.id
    no_key = [await store.create(new_job("alice")) for _ in range(2)]
    assert all(c for _, c in no_key) and no_key[0][0].id != no_key[1][0].id
    assert await store.count_queued() == 4


async def test_claim_takes_the_oldest_under_a_lease(store: JobStore, clock: TickingClock) -> None:
    assert await store.claim("w1", 30) is None
    a, _ = await store.create(new_job())
    await store.create(new_job())
    job = await store.claim("w1", 30)
    assert job is not None and job.id == a.id
    assert job.status is JobStatus.RUNNING and job.attempts == 1 and job.lease_owner == "w1"
    assert job.started_at is not None and job.lease_expires_at is not None
    assert job.lease_expires_at - job.started_at == timedelta(seconds=30)
    assert await store.get(a.id) == job


async def test_claims_are_fair_between_owners(store: JobStore) -> None:
    a1, _ = await store.create(new_job("alice"))
    a2, _ = await store.create(new_job("alice"))
    a3, _ = await store.create(new_job("alice"))
    b1, _ = await store.create(new_job("bob"))
    b2, _ = await store.create(new_job("bob"))
    order = [(await store.claim("w", 60)) for _ in range(5)]
    # alice (oldest) first; then bob has fewer running; then alice again, bob, alice.
    assert [j.id for j in order if j] == [a1.id, b1.id, a2.id, b2.id, a3.id]


async def position(store: JobStore, job_id: str) -> int | None:
    placed = await store.get_placed(job_id)
    assert placed is not None
    return placed[1]


async def test_queue_position_and_count(store: JobStore) -> None:
    jobs = [(await store.create(new_job("alice" if i % 2 else "bob")))[0] for i in range(4)]
    assert [await position(store, j.id) for j in jobs] == [0, 1, 2, 3]
    assert await store.count_queued() == 4
    assert await store.count_queued("alice") == 2 and await store.count_queued("carol") == 0
    claimed = await store.claim("w", 60)
    assert claimed is not None and claimed.id == jobs[0].id
    assert [await position(store, j.id) for j in jobs] == [None, 0, 1, 2]
    assert await store.get_placed("job_missing") is None
    assert await store.count_queued("bob") == 1


async def test_renew_extends_the_lease_and_tells_of_a_cancel(
    store: JobStore, clock: TickingClock
) -> None:
    await store.create(new_job())
    job = await store.claim("w1", 10)
    assert job is not None
    clock.advance(5)
    renewed = await store.renew(job.id, "w1", 10)
    assert renewed is not None and not renewed.cancel_requested
    assert renewed.lease_expires_at is not None and job.lease_expires_at is not None
    assert renewed.lease_expires_at > job.lease_expires_at
    assert await store.renew(job.id, "w2", 10) is None
    await store.request_cancel(job.id)
    renewed = await store.renew(job.id, "w1", 10)
    assert renewed is not None and renewed.cancel_requested
    assert await store.renew("job_missing", "w1", 10) is None


async def test_progress_and_call_id_only_from_the_holder(store: JobStore) -> None:
    await store.create(new_job())
    job = await store.claim("w1", 60)
    assert job is not None
    await store.report_progress(job.id, "w1", 3, 20)
    await store.set_call_id(job.id, "w1", "fc-123")
    await store.report_progress(job.id, "w2", 9, 20)
    await store.set_call_id(job.id, "w2", "fc-other")
    got = await store.get(job.id)
    assert got is not None
    assert (got.progress_step, got.progress_total, got.call_id) == (3, 20, "fc-123")
    assert got.updated_at > job.updated_at


async def test_finish_only_by_the_lease_holder(store: JobStore) -> None:
    await store.create(new_job())
    job = await store.claim("w1", 60)
    assert job is not None
    outputs = (OutputFile("image-0.png", "image/png", 1234),)
    assert await store.finish(job.id, "w2", JobStatus.SUCCEEDED, outputs=outputs) is None
    with pytest.raises(ValueError, match="ended status"):
        await store.finish(job.id, "w1", JobStatus.RUNNING)
    done = await store.finish(
        job.id, "w1", JobStatus.SUCCEEDED, outputs=outputs, result_data={"seed": 42}
    )
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.finished_at is not None and done.lease_owner is None
    assert await store.get(job.id) == done
    assert done.outputs == outputs and done.result_data == {"seed": 42}
    assert await store.finish(job.id, "w1", JobStatus.FAILED, error="late") is None


async def test_outbox_row_appears_exactly_when_the_job_ends(
    store: JobStore, clock: TickingClock
) -> None:
    hooked, _ = await store.create(new_job(webhook=HOOK))
    await store.create(new_job())  # no webhook: never an event
    assert await store.due_deliveries(clock.advance(1), 10) == []
    job = await store.claim("w1", 60)
    assert job is not None and job.id == hooked.id
    await store.report_progress(job.id, "w1", 1, 2)
    assert await store.due_deliveries(clock.advance(1), 10) == []
    payload = {"type": "job.succeeded", "id": job.id}
    await store.finish(job.id, "w1", JobStatus.SUCCEEDED, webhook_payload=payload)
    other = await store.claim("w1", 60)
    assert other is not None
    await store.finish(other.id, "w1", JobStatus.SUCCEEDED, webhook_payload={"x": 1})
    due = await store.due_deliveries(clock.advance(1), 10)
    assert [(d.job_id, d.url, d.payload, d.attempts) for d in due] == [(job.id, HOOK, payload, 0)]


async def test_store_made_endings_queue_the_builders_payload(
    store: JobStore, clock: TickingClock
) -> None:
    queued, _ = await store.create(new_job(webhook=HOOK))
    await store.request_cancel(queued.id)
    dying, _ = await store.create(new_job(webhook=HOOK, max_attempts=1))
    await store.claim("w1", 5)
    await store.recover(clock.advance(10))
    due = await store.due_deliveries(clock.advance(1), 10)
    assert [(d.job_id, d.payload["status"]) for d in due] == [
        (queued.id, "canceled"),
        (dying.id, "failed"),
    ]
    assert due[1].payload["error"] == "The worker running it stopped; giving up after 1 attempt."


async def test_deliveries_are_held_delivered_or_rescheduled(
    store: JobStore, clock: TickingClock
) -> None:
    for _ in range(3):
        await store.create(new_job(webhook=HOOK))
        job = await store.claim("w", 60)
        assert job is not None
        await store.finish(job.id, "w", JobStatus.SUCCEEDED)
    now = clock.advance(1)
    first = await store.due_deliveries(now, 2)
    assert len(first) == 2
    # Fetched rows are held: a second deliverer gets only the third.
    rest = await store.due_deliveries(now, 10)
    assert len(rest) == 1 and rest[0].id not in {d.id for d in first}
    await store.delivered(first[0].id)
    retry_at = now + timedelta(seconds=30)
    await store.reschedule_delivery(first[1].id, retry_at, "HTTP 500")
    await store.reschedule_delivery(rest[0].id, None, "gave up")
    assert await store.due_deliveries(now + timedelta(seconds=29), 10) == []
    again = await store.due_deliveries(retry_at, 10)
    assert [(d.id, d.attempts) for d in again] == [(first[1].id, 1)]
    # Far later: the delivered and the abandoned rows never come back; the held one does.
    later = await store.due_deliveries(now + timedelta(hours=1), 10)
    assert [d.id for d in later] == [first[1].id]


async def test_requeue_retries_then_fails(store: JobStore) -> None:
    await store.create(new_job(max_attempts=2))
    job = await store.claim("w1", 60)
    assert job is not None
    assert await store.requeue(job.id, "w2", "nope") is None
    back = await store.requeue(job.id, "w1", "CUDA out of memory")
    assert back is not None and back.status is JobStatus.QUEUED and back.lease_owner is None
    assert back.error == "CUDA out of memory" and await position(store, job.id) == 0
    job = await store.claim("w1", 60)
    assert job is not None and job.attempts == 2
    failed = await store.requeue(job.id, "w1", "CUDA out of memory")
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.finished_at is not None and failed.error == "CUDA out of memory"
    # A cancel asked while it ran wins over the retry.
    await store.create(new_job())
    job = await store.claim("w1", 60)
    assert job is not None
    await store.request_cancel(job.id)
    canceled = await store.requeue(job.id, "w1", "flaky")
    assert canceled is not None and canceled.status is JobStatus.CANCELED


async def test_request_cancel(store: JobStore) -> None:
    running, _ = await store.create(new_job())
    queued, _ = await store.create(new_job())
    assert (await store.claim("w1", 60)).id == running.id  # type: ignore[union-attr]
    canceled = await store.request_cancel(queued.id)
    assert canceled.status is JobStatus.CANCELED and canceled.finished_at is not None
    assert await store.claim("w2", 60) is None  # it never starts
    flagged = await store.request_cancel(running.id)
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert (await store.request_cancel(running.id)).cancel_requested  # asked twice: same
    with pytest.raises(ConflictError, match="already ended"):
        await store.request_cancel(queued.id)
    with pytest.raises(NotFoundError):
        await store.request_cancel("job_missing")


async def test_an_expired_lease_hands_the_job_on(store: JobStore, clock: TickingClock) -> None:
    await store.create(new_job(max_attempts=2))
    job = await store.claim("w1", 10)
    assert job is not None
    assert await store.recover(clock.advance(5)) == []
    recovered = await store.recover(clock.advance(10))
    assert [(j.id, j.status) for j in recovered] == [(job.id, JobStatus.QUEUED)]
    assert recovered[0].lease_owner is None and recovered[0].error
    taken = await store.claim("w2", 10)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    # The old holder has lost it: no renew, progress or finish of its own.
    assert await store.renew(job.id, "w1", 10) is None
    await store.report_progress(job.id, "w1", 5, 5)
    assert await store.finish(job.id, "w1", JobStatus.SUCCEEDED) is None
    assert (await store.get(job.id)).lease_owner == "w2"  # type: ignore[union-attr]
    # Its second worker dies too: past its attempts, failed with the reason; never running.
    gone = await store.recover(clock.advance(60))
    assert [(j.id, j.status) for j in gone] == [(job.id, JobStatus.FAILED)]
    assert gone[0].error == "The worker running it stopped; giving up after 2 attempts."
    assert await store.get(job.id) == gone[0]
    assert await store.finish(job.id, "w2", JobStatus.SUCCEEDED) is None


async def test_pages_newest_first_with_filters(store: JobStore, clock: TickingClock) -> None:
    jobs = []
    for i in range(23):
        owner = "alice" if i % 3 else "bob"
        pipeline = "image-to-image" if i % 4 == 0 else "text-to-image"
        jobs.append((await store.create(new_job(owner, pipeline=pipeline)))[0])
    newest_first = list(reversed(jobs))

    async def walk(query: JobQuery) -> list[str]:
        seen, pages, cursor = [], 0, None
        while True:
            page = await store.page(JobQuery(**{**query.__dict__, "cursor": cursor}))
            seen += [j.id for j in page.jobs]
            pages += 1
            cursor = page.next_cursor
            assert len(page.jobs) <= query.limit
            if cursor is None:
                return seen
            assert pages < 50

    assert await walk(JobQuery(limit=5)) == [j.id for j in newest_first]
    alice = await walk(JobQuery(owner="alice", limit=4))
    assert alice == [j.id for j in newest_first if j.owner == "alice"] and len(alice) > 8
    i2i = await walk(JobQuery(pipeline="image-to-image", limit=2))
    assert i2i == [j.id for j in newest_first if j.pipeline == "image-to-image"]
    after, before = jobs[5].created_at, jobs[15].created_at
    ranged = await walk(JobQuery(created_after=after, created_before=before, limit=3))
    assert ranged == [j.id for j in newest_first if after <= j.created_at < before]
    assert await walk(JobQuery(model_id="other/model")) == []
    job = await store.claim("w", 60)
    assert job is not None
    running = await store.page(JobQuery(status=JobStatus.RUNNING))
    assert [j.id for j in running.jobs] == [job.id] and running.next_cursor is None
    # The exact page size: no empty page after it.
    exact = await store.page(JobQuery(limit=23))
    assert len(exact.jobs) == 23 and exact.next_cursor is None
    with pytest.raises(BadRequestError, match="cursor"):
        await store.page(JobQuery(cursor="not-a-cursor"))
    with pytest.raises(BadRequestError, match="limit"):
        await store.page(JobQuery(limit=0))


async def test_purge_deletes_old_ended_jobs_and_their_events(
    store: JobStore, url: str, clock: TickingClock
) -> None:
    old = []
    for _ in range(2):
        await store.create(new_job(webhook=HOOK))
        job = await store.claim("w", 60)
        assert job is not None
        old.append(await store.finish(job.id, "w", JobStatus.SUCCEEDED))
    canceled, _ = await store.create(new_job())
    await store.request_cancel(canceled.id)
    cutoff = clock.advance(3600)
    recent, _ = await store.create(new_job())
    await store.request_cancel(recent.id)
    waiting, _ = await store.create(new_job())
    running, _ = await store.create(new_job())
    await store.claim("w", 60)
    purged = await store.purge(cutoff)
    assert sorted(purged) == sorted([old[0].id, old[1].id, canceled.id])  # type: ignore[union-attr]
    for job_id in purged:
        assert await store.get(job_id) is None
    for job in (recent, waiting, running):
        assert await store.get(job.id) is not None
    assert raw_rows(url, "SELECT COUNT(*) FROM webhook_outbox") == [(0,)]
    assert await store.purge(cutoff) == []


async def test_concurrent_claimers_never_share_a_job(url: str, clock: TickingClock) -> None:
    one, two = make_store(url, clock), make_store(url, clock)
    await one.open()
    await two.open()
    try:
        ids = {(await one.create(new_job(f"owner{i % 3}")))[0].id for i in range(60)}

        async def drain(store: JobStore, worker: str) -> list[str]:
            taken = []
            while (job := await store.claim(worker, 60)) is not None:
                taken.append(job.id)
                # A pause between claims, as a runner has: without it one claimer could take
                # the whole queue before the others got the lock (a flaky test, no bug).
                await asyncio.sleep(0.002)
            return taken

        got = await asyncio.gather(drain(one, "w1"), drain(one, "w2"), drain(two, "w3"))
        flat = [job_id for taken in got for job_id in taken]
        # Every job once: none twice, none missed. (How the jobs split between the claimers is
        # the scheduler's: on a busy CPU one claimer may drain them all, so it is not asserted.)
        assert sorted(flat) == sorted(ids)
        assert await one.count_queued() == 0
    finally:
        await one.close()
        await two.close()


async def test_jobs_survive_a_reopen(url: str, clock: TickingClock) -> None:
    store = make_store(url, clock)
    await store.open()
    job, _ = await store.create(new_job())
    await store.close()
    store = make_store(url, clock)
    await store.open()
    try:
        assert await store.get(job.id) == job
    finally:
        await store.close()


def test_open_store_picks_the_backend_by_url(tmp_path: Path) -> None:
    default = open_store(None, tmp_path)
    assert isinstance(default, SqliteJobStore) and default.path == tmp_path / "jobs.sqlite3"
    assert isinstance(open_store("", tmp_path), SqliteJobStore)
    absolute = open_store(f"sqlite:///{tmp_path}/x.db", tmp_path)
    assert isinstance(absolute, SqliteJobStore) and absolute.path == tmp_path / "x.db"
    relative = open_store("sqlite:///data/x.db", tmp_path)
    assert isinstance(relative, SqliteJobStore) and relative.path == Path("data/x.db")
    from adapter.jobs.store.postgres import PostgresJobStore

    assert isinstance(open_store("postgresql://u@h/db", tmp_path), PostgresJobStore)
    assert isinstance(open_store("postgres://u@h/db", tmp_path), PostgresJobStore)
    for bad in ("mysql://u:secret@h/db", "sqlite://", "jobs.db"):
        with pytest.raises(ConfigError, match="ADAPTER_JOBS_DATABASE_URL") as caught:
            open_store(bad, tmp_path)
        assert "secret" not in str(caught.value)


async def test_the_real_clock_gives_utc_times(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "j.db")
    await store.open()
    try:
        job, _ = await store.create(new_job())
        assert job.created_at.tzinfo == UTC
        got = await store.get(job.id)
        assert got is not None and got.created_at == job.created_at
    finally:
        await store.close()


async def test_concurrent_creates_with_one_key_make_one_job(url: str, clock: TickingClock) -> None:
    one, two = make_store(url, clock), make_store(url, clock)
    await one.open()
    await two.open()
    try:
        results = await asyncio.gather(
            *(s.create(new_job("alice", idempotency_key="same")) for s in (one, two) * 4)
        )
        assert sum(created for _, created in results) == 1
        assert len({job.id for job, _ in results}) == 1
        assert await one.count_queued() == 1
    finally:
        await one.close()
        await two.close()


async def test_a_schema_newer_than_the_code_is_refused(url: str, clock: TickingClock) -> None:
    store = make_store(url, clock)
    await store.open()
    await store.close()
    future = "SELECT 999, 'from the future', applied_at FROM schema_version WHERE version = 1"
    raw_rows(url, f"INSERT INTO schema_version {future}")
    with pytest.raises(RuntimeError, match="schema version 999"):
        await make_store(url, clock).open()


async def test_an_unreachable_postgres_names_the_setting() -> None:
    store = open_store("postgresql://postgres:hunter2@127.0.0.1:1/test", Path("."))
    with pytest.raises(ConnectionError, match="ADAPTER_JOBS_DATABASE_URL") as caught:
        await store.open()
    assert "hunter2" not in str(caught.value) and "127.0.0.1:1/test" in str(caught.value)
