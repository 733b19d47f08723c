"""The job store in PostgreSQL (psycopg 3, async): one queue shared by several replicas.

Each operation is one transaction on a pooled connection. A claim picks its job with SELECT ...
FOR UPDATE SKIP LOCKED, so replicas claiming together each lock a different row and never wait
on one another; changes to a held job lock its row first (FOR UPDATE) and check the lease, so a
replica that lost its job (its lease expired and another took it over) cannot change it. Times
come from the store's clock (the replica's, like the `now` of recover), JSON columns are JSONB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

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
from adapter.jobs.store.postgres_codec import Row, decode, encode
from adapter.jobs.store.transitions import Changes

T = TypeVar("T")
Conn = AsyncConnection[Any]
ENDED = [s.value for s in TERMINAL]
M = "%s"
CREATE_LOCK = 0x6A6F62732D6E6577  # "jobs-new": the advisory lock of creates under limits


def where_it_is(url: str) -> str:
    """host:port/dbname of a URL, for messages (never its password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unparsable URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresJobStore:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock = utc_now,
        webhook_payload: PayloadBuilder = default_payload,
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._clock = clock
        self._payload = webhook_payload
        self._pool_size = pool_size
        self._connect_timeout_s = connect_timeout_s
        self._pool: AsyncConnectionPool[Conn] | None = None

    # --- plumbing -------------------------------------------------------------------------

    async def open(self) -> None:
        # Migrate on a connection of its own first: a bad URL or a down server fails here,
        # with the error, instead of as a pool timeout later.
        try:
            conn = await AsyncConnection.connect(
                self.url, connect_timeout=max(1, int(self._connect_timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"ADAPTER_JOBS_DATABASE_URL: cannot connect to PostgreSQL at"
                f" {where_it_is(self.url)}: {exc}"
            ) from exc
        async with conn:
            async with conn.transaction():
                await self._migrate(conn)
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs={"autocommit": True},
            # A connection the server ended while it sat in the pool (a restart, a failover,
            # an idle timeout) is replaced before use, not handed to a request that then fails.
            check=AsyncConnectionPool.check_connection,
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self, conn: Conn) -> None:
        dialect = migrations.POSTGRES
        # Held until this transaction ends: replicas starting together migrate one at a time.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.PG_MIGRATION_LOCK,))
        await conn.execute(dialect.render(migrations.SCHEMA_VERSION_TABLE))
        cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        current = await cur.fetchone()
        for migration in migrations.pending(current[0] if current else 0):
            for statement in migration.statements:
                await conn.execute(dialect.render(statement))
            await conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.description, self._clock()),
            )

    async def schema_version(self) -> int:
        rows = await self._run(
            lambda conn: self._rows(
                conn, "SELECT COALESCE(MAX(version), 0) AS v FROM schema_version"
            )
        )
        return int(rows[0]["v"])

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], *, snapshot: bool = False) -> T:
        """`fn` in one transaction (committed when it returns, rolled back if it raises). A
        `snapshot` is read-only and REPEATABLE READ: every statement sees the database as the
        first one did (READ COMMITTED, the default, gives each statement its own)."""
        if self._pool is None:
            raise RuntimeError("the job store is not open")
        async with self._pool.connection() as conn, conn.transaction():
            if snapshot:
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return await fn(conn)

    @staticmethod
    async def _rows(conn: Conn, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[Row]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, args)
            return await cur.fetchall() if cur.description else []

    async def _fetch(self, conn: Conn, job_id: str, *, lock: bool = False) -> JobRecord | None:
        sql = "SELECT * FROM jobs WHERE id = %s" + (" FOR UPDATE" if lock else "")
        rows = await self._rows(conn, sql, (job_id,))
        return decode(rows[0]) if rows else None

    async def _held(self, conn: Conn, job_id: str, worker_id: str) -> JobRecord | None:
        job = await self._fetch(conn, job_id, lock=True)
        return job if transitions.holds(job, worker_id) else None

    async def _change(
        self, conn: Conn, job: JobRecord, changes: Changes, payload: dict[str, Any] | None = None
    ) -> JobRecord:
        """Write the changes (the row is locked); when they end a job with a webhook, queue its
        event in the same transaction (the door's `payload`, or the builder's body)."""
        changes = without_nul(changes)  # PostgreSQL refuses U+0000 (common.without_nul)
        values = [encode(name, value) for name, value in changes.items()]
        await conn.execute(sql.update_job(M, list(changes)), (*values, job.id))
        changed = transitions.apply(job, changes)
        if changed.status.terminal and not job.status.terminal and changed.webhook:
            body = Jsonb(without_nul(self._payload(changed) if payload is None else payload))
            now = self._clock()
            await conn.execute(sql.insert_delivery(M), (job.id, changed.webhook, body, now, now))
        return changed

    # --- jobs -----------------------------------------------------------------------------

    async def create(
        self, job: NewJob, limits: QueueLimits | None = None
    ) -> tuple[JobRecord, bool]:
        record = transitions.new_row(job, self._clock())
        values = [encode(name, getattr(record, name)) for name in sql.COLUMNS]
        # A concurrent create with the same key waits on the unique index, then does nothing.
        insert = (
            f"{sql.insert_job(M)} ON CONFLICT (owner, idempotency_key)"
            " WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id"
        )
        same_key = "SELECT * FROM jobs WHERE owner = %s AND idempotency_key = %s"

        async def run(conn: Conn) -> tuple[JobRecord, bool]:
            if limits is not None:
                # Held until commit: creates that count the queue run one at a time, so two
                # cannot both find room for one (READ COMMITTED: each count sees the last).
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
                if job.idempotency_key is not None:
                    rows = await self._rows(conn, same_key, (job.owner, job.idempotency_key))
                    if rows:
                        return decode(rows[0]), False
                limits.check(await self._queued(conn, None), await self._queued(conn, job.owner))
            if await self._rows(conn, insert, values):
                return record, True
            rows = await self._rows(conn, same_key, (job.owner, job.idempotency_key))
            return decode(rows[0]), False

        return await self._run(run)

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._run(lambda conn: self._fetch(conn, job_id))

    async def get_placed(self, job_id: str) -> tuple[JobRecord, int | None] | None:
        async def run(conn: Conn) -> tuple[JobRecord, int | None] | None:
            job = await self._fetch(conn, job_id)
            return None if job is None else (job, (await self._positions(conn, [job])).get(job_id))

        return await self._run(run, snapshot=True)

    async def page(self, query: JobQuery) -> JobPage:
        text, args = sql.page(query, M, lambda when: when)

        async def run(conn: Conn) -> JobPage:
            jobs = [decode(row) for row in await self._rows(conn, text, args)]
            return sql.page_of(jobs, query.limit, await self._positions(conn, jobs))

        return await self._run(run, snapshot=True)

    async def _positions(self, conn: Conn, jobs: Sequence[JobRecord]) -> dict[str, int]:
        ids = sql.queued_ids(jobs)
        if not ids:
            return {}
        rows = await self._rows(conn, sql.queue_positions(M, len(ids)), ids)
        return {row["id"]: int(row["ahead"]) for row in rows}

    async def count_queued(self, owner: str | None = None) -> int:
        return await self._run(lambda conn: self._queued(conn, owner))

    async def _queued(self, conn: Conn, owner: str | None) -> int:
        text, args = sql.count_queued(M, owner)
        return int((await self._rows(conn, text, args))[0]["n"])

    async def claim(
        self, worker_id: str, lease_s: float, models: Collection[tuple[str, str]] | None = None
    ) -> JobRecord | None:
        query = sql.claim(M, models)
        if query is None:
            return None
        # SKIP LOCKED: a row another replica is claiming right now is passed over.
        text, args = f"{query[0]} FOR UPDATE OF j SKIP LOCKED", query[1]

        async def run(conn: Conn) -> JobRecord | None:
            rows = await self._rows(conn, text, args)
            job = await self._fetch(conn, rows[0]["id"]) if rows else None
            if job is None:
                return None
            changes = transitions.claimed(job, worker_id, lease_s, self._clock())
            return await self._change(conn, job, changes)

        return await self._run(run)

    async def renew(self, job_id: str, worker_id: str, lease_s: float) -> JobRecord | None:
        async def run(conn: Conn) -> JobRecord | None:
            job = await self._held(conn, job_id, worker_id)
            if job is None:
                return None
            # Not updated_at: a lease is no change a client sees.
            expires = later(self._clock(), lease_s)
            return await self._change(conn, job, {"lease_expires_at": expires})

        return await self._run(run)

    async def report_progress(self, job_id: str, worker_id: str, step: int, total: int) -> None:
        async def run(conn: Conn) -> None:
            job = await self._held(conn, job_id, worker_id)
            if job is not None:
                changes = {"progress_step": step, "progress_total": total}
                await self._change(conn, job, {**changes, "updated_at": self._clock()})

        await self._run(run)

    async def set_call_id(self, job_id: str, worker_id: str, call_id: str) -> None:
        async def run(conn: Conn) -> None:
            job = await self._held(conn, job_id, worker_id)
            if job is not None:
                await self._change(conn, job, {"call_id": call_id})

        await self._run(run)

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

        async def run(conn: Conn) -> JobRecord | None:
            job = await self._held(conn, job_id, worker_id)
            if job is None:
                return None
            return await self._change(conn, job, changes, webhook_payload)

        return await self._run(run)

    async def requeue(self, job_id: str, worker_id: str, error: str) -> JobRecord | None:
        async def run(conn: Conn) -> JobRecord | None:
            job = await self._held(conn, job_id, worker_id)
            if job is None:
                return None
            return await self._change(conn, job, transitions.released(job, error, self._clock()))

        return await self._run(run)

    async def request_cancel(self, job_id: str) -> JobRecord:
        async def run(conn: Conn) -> JobRecord:
            job = await self._fetch(conn, job_id, lock=True)
            if job is None:
                raise not_found(job_id)
            changes = transitions.cancel(job, self._clock())
            if changes is None:
                raise already_ended(job)
            return await self._change(conn, job, changes)

        return await self._run(run)

    async def recover(self, now: datetime) -> list[JobRecord]:
        async def run(conn: Conn) -> list[JobRecord]:
            # SKIP LOCKED: a job whose holder is renewing it right now is not taken from it,
            # and two replicas recovering together split the expired jobs between them.
            text = f"{sql.expired_leases(M)} FOR UPDATE SKIP LOCKED"
            rows = await self._rows(conn, text, (now,))
            jobs = [decode(row) for row in rows]
            return [await self._change(conn, job, transitions.expired(job, now)) for job in jobs]

        return await self._run(run)

    async def purge(self, finished_before: datetime) -> list[str]:
        outbox, jobs = sql.purge(M, f"status = ANY({M})")
        args = (ENDED, finished_before)

        async def run(conn: Conn) -> list[str]:
            await conn.execute(outbox, args)
            rows = await self._rows(conn, jobs, args)
            return sorted(row["id"] for row in rows)

        return await self._run(run)

    # --- webhook outbox -------------------------------------------------------------------

    async def due_deliveries(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        async def run(conn: Conn) -> list[WebhookDelivery]:
            text = f"{sql.due_deliveries(M)} FOR UPDATE SKIP LOCKED"
            rows = await self._rows(conn, text, (now, limit))
            # Held for a while: another replica does not send the same event meanwhile.
            hold = later(now, DELIVERY_HOLD_S)
            ids = [row["id"] for row in rows]
            await conn.execute(
                "UPDATE webhook_outbox SET next_attempt_at = %s WHERE id = ANY(%s)", (hold, ids)
            )
            return [
                WebhookDelivery(
                    id=row["id"],
                    job_id=row["job_id"],
                    url=row["url"],
                    payload=row["payload"],
                    attempts=row["attempts"],
                    next_attempt_at=row["next_attempt_at"].astimezone(UTC),
                )
                for row in rows
            ]

        return await self._run(run)

    async def delivered(self, delivery_id: int) -> None:
        args = (self._clock(), delivery_id)
        await self._run(lambda conn: conn.execute(sql.delivered(M), args))

    async def reschedule_delivery(
        self, delivery_id: int, next_attempt_at: datetime | None, error: str
    ) -> None:
        args = (next_attempt_at, without_nul(error), delivery_id)
        await self._run(lambda conn: conn.execute(sql.reschedule_delivery(M), args))
