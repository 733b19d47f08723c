"""The job store in an embedded SQLite file (WAL mode): one process, no server to run.

One connection, used from worker threads (asyncio.to_thread) one call at a time under a lock,
so the event loop never waits on the disk. Every change runs in a BEGIN IMMEDIATE transaction:
it takes SQLite's write lock first, so a read-then-write (a claim, a cancel) cannot interleave
with another writer, in this process or another one on the same file (busy_timeout waits).
Times are stored as integer microseconds since the epoch (UTC), JSON columns as text.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from adapter.jobs.model import (
    TERMINAL,
    JobPage,
    JobQuery,
    JobRecord,
    JobStatus,
    NewJob,
    OutputFile,
    QueueLimits,
    WebhookDelivery,
)
from adapter.jobs.store import migrations, sql, transitions
from adapter.jobs.store.common import (
    DELIVERY_HOLD_S,
    Clock,
    PayloadBuilder,
    already_ended,
    default_payload,
    later,
    not_found,
    utc_now,
    without_nul,
)
from adapter.jobs.store.sqlite_codec import decode, encode, from_us, to_us
from adapter.jobs.store.sqlite_open import connect, retry_locked
from adapter.jobs.store.transitions import Changes

T = TypeVar("T")
FILE_NAME = "jobs.sqlite3"
ENDED = tuple(s.value for s in TERMINAL)
M = "?"


class SqliteJobStore:
    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        webhook_payload: PayloadBuilder = default_payload,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self.path = path
        self._clock = clock
        self._payload = webhook_payload
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # --- plumbing -------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        conn = connect(self.path, self._busy_timeout_s)
        self._conn = conn
        try:
            with self._lock:
                # Stores opening the file together migrate one at a time (BEGIN IMMEDIATE).
                retry_locked(lambda: self._tx(self._migrate), self._busy_timeout_s)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    async def close(self) -> None:
        # Under the lock: a call whose awaiting task was cancelled may still be running its
        # SQL in a thread, and closing the connection under it crashes the process.
        def closing() -> None:
            with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

        await asyncio.to_thread(closing)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the job store is not open")
        return self._conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return self._tx(fn)

        return await asyncio.to_thread(locked)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._connection())

        return await asyncio.to_thread(locked)

    async def _snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn`'s reads in one transaction, so they all see the file as it was at the first
        (WAL keeps that snapshot while other connections commit)."""

        def read(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                # SQLite may have ended the transaction itself (a full disk, an I/O error):
                # the read's own error is the one to raise.
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._read(read)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        dialect = migrations.SQLITE
        conn.execute(dialect.render(migrations.SCHEMA_VERSION_TABLE))
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        for migration in migrations.pending(current[0]):
            for statement in migration.statements:
                conn.execute(dialect.render(statement))
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, to_us(self._clock())),
            )

    async def schema_version(self) -> int:
        sql = "SELECT COALESCE(MAX(version), 0) FROM schema_version"
        return await self._read(lambda conn: int(conn.execute(sql).fetchone()[0]))

    @staticmethod
    def _fetch(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else decode(row)

    def _change(
        self,
        conn: sqlite3.Connection,
        job: JobRecord,
        changes: Changes,
        payload: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Write the changes; when they end a job with a webhook, queue its event too (the
        door's `payload`, or the builder's body of the ended job)."""
        changes = without_nul(changes)  # PostgreSQL refuses U+0000 (common.without_nul)
        values = [encode(name, value) for name, value in changes.items()]
        conn.execute(sql.update_job(M, list(changes)), (*values, job.id))
        changed = transitions.apply(job, changes)
        if changed.status.terminal and not job.status.terminal and changed.webhook:
            body = json.dumps(without_nul(self._payload(changed) if payload is None else payload))
            now = to_us(self._clock())
            conn.execute(sql.insert_delivery(M), (job.id, changed.webhook, body, now, now))
        return changed

    def _held(self, conn: sqlite3.Connection, job_id: str, worker_id: str) -> JobRecord | None:
        job = self._fetch(conn, job_id)
        return job if transitions.holds(job, worker_id) else None

    # --- jobs -----------------------------------------------------------------------------

    async def create(
        self, job: NewJob, limits: QueueLimits | None = None
    ) -> tuple[JobRecord, bool]:
        # BEGIN IMMEDIATE (_write): creates, in this process or another, run one at a time.
        def run(conn: sqlite3.Connection) -> tuple[JobRecord, bool]:
            if job.idempotency_key is not None:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?",
                    (job.owner, job.idempotency_key),
                ).fetchone()
                if row is not None:
                    return decode(row), False
            if limits is not None:
                limits.check(self._queued(conn, None), self._queued(conn, job.owner))
            record = transitions.new_row(job, self._clock())
            values = [encode(name, getattr(record, name)) for name in sql.COLUMNS]
            conn.execute(sql.insert_job(M), values)
            return record, True

        return await self._write(run)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._read(lambda conn: self._fetch(conn, job_id))

    async def get_placed(self, job_id: str) -> tuple[JobRecord, int | None] | None:
        def run(conn: sqlite3.Connection) -> tuple[JobRecord, int | None] | None:
            job = self._fetch(conn, job_id)
            return None if job is None else (job, self._positions(conn, [job]).get(job_id))

        return await self._snapshot(run)

    async def page(self, query: JobQuery) -> JobPage:
        text, args = sql.page(query, M, to_us)

        def run(conn: sqlite3.Connection) -> JobPage:
            jobs = [decode(row) for row in conn.execute(text, args).fetchall()]
            return sql.page_of(jobs, query.limit, self._positions(conn, jobs))

        return await self._snapshot(run)

    @staticmethod
    def _positions(conn: sqlite3.Connection, jobs: Sequence[JobRecord]) -> dict[str, int]:
        ids = sql.queued_ids(jobs)
        if not ids:
            return {}
        rows = conn.execute(sql.queue_positions(M, len(ids)), ids).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    async def count_queued(self, owner: str | None = None) -> int:
        return await self._read(lambda conn: self._queued(conn, owner))

    @staticmethod
    def _queued(conn: sqlite3.Connection, owner: str | None) -> int:
        text, args = sql.count_queued(M, owner)
        return int(conn.execute(text, args).fetchone()[0])

    async def claim(
        self, worker_id: str, lease_s: float, models: Collection[tuple[str, str]] | None = None
    ) -> JobRecord | None:
        query = sql.claim(M, models)

        def run(conn: sqlite3.Connection) -> JobRecord | None:
            row = None if query is None else conn.execute(*query).fetchone()
            job = None if row is None else self._fetch(conn, row[0])
            if job is None:
                return None
            return self._change(
                conn, job, transitions.claimed(job, worker_id, lease_s, self._clock())
            )

        return await self._write(run)

    async def renew(self, job_id: str, worker_id: str, lease_s: float) -> JobRecord | None:
        def run(conn: sqlite3.Connection) -> JobRecord | None:
            job = self._held(conn, job_id, worker_id)
            if job is None:
                return None
            # Not updated_at: a lease is no change a client sees.
            return self._change(conn, job, {"lease_expires_at": later(self._clock(), lease_s)})

        return await self._write(run)

    async def report_progress(self, job_id: str, worker_id: str, step: int, total: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            job = self._held(conn, job_id, worker_id)
            if job is not None:
                changes = {"progress_step": step, "progress_total": total}
                self._change(conn, job, {**changes, "updated_at": self._clock()})

        await self._write(run)

    async def set_call_id(self, job_id: str, worker_id: str, call_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            job = self._held(conn, job_id, worker_id)
            if job is not None:
                self._change(conn, job, {"call_id": call_id})

        await self._write(run)

    async def finish(
        self,
        job_id: str,
        worker_id: str,
        status: JobStatus,
        *,
        outputs: tuple[OutputFile, ...] = (),
        result_data: dict[str, Any] | None = None,
        error: str | None = None,
        webhook_payload: dict[str, Any] | None = None,
    ) -> JobRecord | None:
        changes = transitions.ended(
            status, self._clock(), outputs=outputs, result_data=result_data, error=error
        )

        def run(conn: sqlite3.Connection) -> JobRecord | None:
            job = self._held(conn, job_id, worker_id)
            if job is None:
                return None
            return self._change(conn, job, changes, webhook_payload)

        return await self._write(run)

    async def requeue(self, job_id: str, worker_id: str, error: str) -> JobRecord | None:
        def run(conn: sqlite3.Connection) -> JobRecord | None:
            job = self._held(conn, job_id, worker_id)
            if job is None:
                return None
            return self._change(conn, job, transitions.released(job, error, self._clock()))

        return await self._write(run)

    async def request_cancel(self, job_id: str) -> JobRecord:
        def run(conn: sqlite3.Connection) -> JobRecord:
            job = self._fetch(conn, job_id)
            if job is None:
                raise not_found(job_id)
            changes = transitions.cancel(job, self._clock())
            if changes is None:
                raise already_ended(job)
            return self._change(conn, job, changes)

        return await self._write(run)

    async def recover(self, now: datetime) -> list[JobRecord]:
        def run(conn: sqlite3.Connection) -> list[JobRecord]:
            rows = conn.execute(sql.expired_leases(M), (to_us(now),)).fetchall()
            jobs = [decode(row) for row in rows]
            return [self._change(conn, job, transitions.expired(job, now)) for job in jobs]

        return await self._write(run)

    async def purge(self, finished_before: datetime) -> list[str]:
        outbox, jobs = sql.purge(M, f"status IN ({', '.join(M for _ in ENDED)})")
        args = (*ENDED, to_us(finished_before))

        def run(conn: sqlite3.Connection) -> list[str]:
            conn.execute(outbox, args)
            return sorted(row[0] for row in conn.execute(jobs, args).fetchall())

        return await self._write(run)

    # --- webhook outbox -------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        def run(conn: sqlite3.Connection) -> list[WebhookDelivery]:
            rows = conn.execute(sql.due_deliveries(M), (to_us(now), limit)).fetchall()
            # Held for a while: another process on the file does not send the same event.
            hold = to_us(later(now, DELIVERY_HOLD_S))
            for row in rows:
                conn.execute(
                    "UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ?", (hold, row["id"])
                )
            return [
                WebhookDelivery(
                    id=row["id"],
                    job_id=row["job_id"],
                    url=row["url"],
                    payload=json.loads(row["payload"]),
                    attempts=row["attempts"],
                    next_attempt_at=from_us(row["next_attempt_at"]) or now,
                )
                for row in rows
            ]

        return await self._write(run)

    async def delivered(self, delivery_id: int) -> None:
        args = (to_us(self._clock()), delivery_id)
        await self._write(lambda conn: conn.execute(sql.delivered(M), args))

    async def reschedule_delivery(
        self, delivery_id: int, next_attempt_at: datetime | None, error: str
    ) -> None:
        args = (to_us(next_attempt_at), without_nul(error), delivery_id)
        await self._write(lambda conn: conn.execute(sql.reschedule_delivery(M), args))
