"""The queue limits hold when submissions arrive at the same moment, on SQLite and the real
PostgreSQL alike: each store counts the queue in the transaction that queues the job, so
creates racing on two stores (two replicas) never queue more than the limit allows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapter.jobs.model import NewJob, QueueLimits
from adapter.jobs.store.base import JobStore
from contract.errors import QueueFullError
from tests.support.jobs_store import TickingClock, make_store, new_job

pytestmark = pytest.mark.anyio
RACERS = 12


@pytest.fixture
async def replicas(url: str, clock: TickingClock) -> AsyncIterator[list[JobStore]]:
    """Two stores on one database, as two replicas would hold."""
    stores = [make_store(url, clock) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def race(stores: list[JobStore], jobs: list[NewJob], limits: QueueLimits) -> list[str]:
    """Create every job at once, spread over the stores; the messages of those refused."""

    async def one(index: int, job: NewJob) -> str | None:
        try:
            await stores[index % len(stores)].create(job, limits)
        except QueueFullError as exc:
            return exc.msg
        return None

    outcomes = await asyncio.gather(*(one(i, job) for i, job in enumerate(jobs)))
    return [msg for msg in outcomes if msg is not None]


async def test_racing_creates_never_pass_the_total(replicas: list[JobStore]) -> None:
    limits = QueueLimits(total=3, per_owner=100, retry_after_s=2)
    refused = await race(replicas, [new_job(f"owner{i}") for i in range(RACERS)], limits)
    assert await replicas[0].count_queued() == 3
    assert len(refused) == RACERS - 3
    assert all("ADAPTER_JOBS_MAX_QUEUED=3" in msg for msg in refused)


async def test_racing_creates_never_pass_one_owners_share(replicas: list[JobStore]) -> None:
    limits = QueueLimits(total=100, per_owner=2, retry_after_s=2)
    jobs = [new_job("alice") for _ in range(RACERS)] + [new_job("bob")]
    refused = await race(replicas, jobs, limits)
    assert await replicas[0].count_queued("alice") == 2
    assert await replicas[1].count_queued("bob") == 1
    assert len(refused) == RACERS - 2
    assert all("ADAPTER_JOBS_MAX_QUEUED_PER_TOKEN=2" in msg for msg in refused)


async def test_a_replay_of_a_queued_job_is_never_refused(replicas: list[JobStore]) -> None:
    limits = QueueLimits(total=1, per_owner=1, retry_after_s=2)
    first, created = await replicas[0].create(new_job(idempotency_key="k1"), limits)
    assert created
    again, created = await replicas[1].create(new_job(idempotency_key="k1"), limits)
    assert (again.id, created) == (first.id, False)
    with pytest.raises(QueueFullError) as caught:
        await replicas[1].create(new_job(idempotency_key="k2"), limits)
    assert caught.value.retry_after_s == 2
