"""The SQL both stores send, written once: `m` is the dialect's parameter mark ("?" for
sqlite3, "%s" for psycopg) and `t` turns a time into the value the column holds."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from adapter.jobs.model import JobPage, JobQuery, JobRecord, JobStatus
from adapter.jobs.store.common import check_limit, decode_cursor, encode_cursor

COLUMNS = tuple(f.name for f in fields(JobRecord))
TimeValue = Callable[[datetime], Any]


# The id of the next job, fair between owners: the one with the fewest running jobs first,
# then the oldest job. Running counts joined once per owner and only ids sorted: with 5000
# queued jobs a claim takes ~6 ms on PostgreSQL, ~50 ms with a count per row and whole rows.
def claim(m: str, models: Collection[tuple[str, str]] | None) -> tuple[str, list[str]] | None:
    """The claim's query and its arguments; with `models`, only a job of one of those
    (pipeline, model_id) pairs (the ones with a free slot): None when there are none."""
    if models is not None and not models:
        return None
    pairs = sorted(models or ())
    only = " OR ".join(f"(j.pipeline = {m} AND j.model_id = {m})" for _ in pairs)
    return (
        "SELECT j.id FROM jobs AS j LEFT JOIN (SELECT owner, COUNT(*) AS n FROM jobs"
        " WHERE status = 'running' GROUP BY owner) AS r ON r.owner = j.owner"
        f" WHERE j.status = 'queued'{f' AND ({only})' if only else ''}"
        " ORDER BY COALESCE(r.n, 0), j.created_at, j.id LIMIT 1",
        [value for pair in pairs for value in pair],
    )


def queue_positions(m: str, count: int) -> str:
    """(id, ahead) of those of `count` ids that are queued, in one query: the queued jobs
    numbered in claim order (oldest first) once, not one count per job."""
    return (
        "SELECT id, ahead FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) - 1"
        " AS ahead FROM jobs WHERE status = 'queued') AS q"
        f" WHERE id IN ({', '.join(m for _ in range(count))})"
    )


def queued_ids(jobs: Sequence[JobRecord]) -> list[str]:
    return [job.id for job in jobs if job.status is JobStatus.QUEUED]


def count_queued(m: str, owner: str | None) -> tuple[str, list[Any]]:
    sql = "SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'"
    return (sql, []) if owner is None else (f"{sql} AND owner = {m}", [owner])


def insert_job(m: str) -> str:
    return f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join(m for _ in COLUMNS)})"


def update_job(m: str, names: Sequence[str]) -> str:
    return f"UPDATE jobs SET {', '.join(f'{n} = {m}' for n in names)} WHERE id = {m}"


def insert_delivery(m: str) -> str:
    return (
        "INSERT INTO webhook_outbox (job_id, url, payload, attempts, next_attempt_at,"
        f" created_at) VALUES ({m}, {m}, {m}, 0, {m}, {m})"
    )


def due_deliveries(m: str) -> str:
    return (
        f"SELECT * FROM webhook_outbox WHERE next_attempt_at <= {m}"
        f" ORDER BY next_attempt_at, id LIMIT {m}"
    )


def delivered(m: str) -> str:
    return (
        f"UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = {m},"
        f" next_attempt_at = NULL, last_error = NULL WHERE id = {m}"
    )


def reschedule_delivery(m: str) -> str:
    return (
        f"UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = {m},"
        f" last_error = {m} WHERE id = {m}"
    )


def expired_leases(m: str) -> str:
    return (
        f"SELECT * FROM jobs WHERE status = 'running' AND lease_expires_at < {m}"
        " ORDER BY created_at, id"
    )


def purge(m: str, ended: str) -> tuple[str, str]:
    """Deleting the outbox rows, then the jobs (returning their ids), of ended jobs finished
    before a time; `ended` is the dialect's test of the status (IN a list, = ANY an array)."""
    where = f"{ended} AND finished_at < {m}"
    return (
        f"DELETE FROM webhook_outbox WHERE job_id IN (SELECT id FROM jobs WHERE {where})",
        f"DELETE FROM jobs WHERE {where} RETURNING id",
    )


def page(query: JobQuery, m: str, t: TimeValue) -> tuple[str, list[Any]]:
    """A page of jobs, newest first, one row more than the limit (to tell a next page)."""
    check_limit(query.limit)
    where, args = ["1 = 1"], list[Any]()
    for column, value in (
        ("owner", query.owner),
        ("status", query.status.value if query.status else None),
        ("pipeline", query.pipeline),
        ("model_id", query.model_id),
    ):
        if value is not None:
            where.append(f"{column} = {m}")
            args.append(value)
    if query.created_after is not None:
        where.append(f"created_at >= {m}")
        args.append(t(query.created_after))
    if query.created_before is not None:
        where.append(f"created_at < {m}")
        args.append(t(query.created_before))
    if query.cursor is not None:
        created, job_id = decode_cursor(query.cursor)
        # (created_at, id) is unique, so the pages neither skip nor repeat a job.
        where.append(f"(created_at, id) < ({m}, {m})")
        args.extend((t(created), job_id))
    sql = (
        f"SELECT * FROM jobs WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {m}"
    )
    return sql, [*args, query.limit + 1]


def page_of(jobs: list[JobRecord], limit: int, positions: dict[str, int]) -> JobPage:
    """The page of the rows `page` fetched: a cursor when there was one row more."""
    more = len(jobs) > limit
    jobs = jobs[:limit]
    cursor = encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None
    return JobPage(jobs, cursor, {job.id: positions[job.id] for job in jobs if job.id in positions})
