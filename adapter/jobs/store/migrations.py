"""The job store's schema, as numbered migrations shared by SQLite and PostgreSQL.

A `schema_version` table records the migrations applied (one row each). Each store applies the
missing ones at open(), in one transaction that first takes a lock (SQLite: BEGIN IMMEDIATE;
PostgreSQL: a transaction-scoped advisory lock), so two replicas starting together apply each
migration once. A migration is never edited once released: a change is a new number.

The SQL is written once with a few placeholders for what differs between the two dialects:
{time} (SQLite: INTEGER microseconds since the epoch, which sort and compare as numbers;
PostgreSQL: TIMESTAMPTZ), {json} (TEXT / JSONB), {bool} (INTEGER 0/1 / BOOLEAN) and {serial}
(an auto-increment integer primary key).
"""

from __future__ import annotations

from dataclasses import dataclass

# PostgreSQL advisory lock key of the migrations (any fixed 64-bit number; this one spells
# "jobs-mig" in ASCII), shared by every replica on the database.
PG_MIGRATION_LOCK = 0x6A6F62732D6D6967

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {time} NOT NULL
)
"""


@dataclass(frozen=True)
class Dialect:
    name: str
    time: str
    json: str
    bool: str
    serial: str

    def render(self, sql: str) -> str:
        return sql.format(time=self.time, json=self.json, bool=self.bool, serial=self.serial)


SQLITE = Dialect(
    name="sqlite",
    time="INTEGER",
    json="TEXT",
    bool="INTEGER",
    serial="INTEGER PRIMARY KEY AUTOINCREMENT",
)
POSTGRES = Dialect(
    name="postgres",
    time="TIMESTAMPTZ",
    json="JSONB",
    bool="BOOLEAN",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "jobs and their webhook outbox",
        (
            """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                status TEXT NOT NULL,
                pipeline TEXT NOT NULL,
                model_id TEXT NOT NULL,
                params {json} NOT NULL,
                metadata {json} NOT NULL,
                webhook TEXT,
                parent_id TEXT,
                idempotency_key TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                created_at {time} NOT NULL,
                updated_at {time} NOT NULL,
                started_at {time},
                finished_at {time},
                progress_step INTEGER,
                progress_total INTEGER,
                error TEXT,
                outputs {json} NOT NULL,
                result_data {json} NOT NULL,
                cancel_requested {bool} NOT NULL,
                lease_owner TEXT,
                lease_expires_at {time},
                call_id TEXT
            )
            """,
            # One job per (owner, idempotency key); jobs without a key are not constrained.
            """
            CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key)
            WHERE idempotency_key IS NOT NULL
            """,
            # Claims and queue positions walk the queued jobs oldest first.
            "CREATE INDEX jobs_status_created ON jobs (status, created_at, id)",
            # Fairness counts each owner's running jobs.
            "CREATE INDEX jobs_status_owner ON jobs (status, owner)",
            # Pages, newest first, of one owner's jobs or of all of them.
            "CREATE INDEX jobs_owner_created ON jobs (owner, created_at, id)",
            "CREATE INDEX jobs_created ON jobs (created_at, id)",
            # Recovery finds expired leases; retention finds old ended jobs.
            "CREATE INDEX jobs_lease ON jobs (status, lease_expires_at)",
            "CREATE INDEX jobs_finished ON jobs (finished_at)",
            """
            CREATE TABLE webhook_outbox (
                id {serial},
                job_id TEXT NOT NULL,
                url TEXT NOT NULL,
                payload {json} NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at {time},
                created_at {time} NOT NULL,
                delivered_at {time},
                last_error TEXT
            )
            """,
            # Due deliveries: pending rows (next_attempt_at set) by time; done or abandoned
            # rows have next_attempt_at NULL.
            "CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)",
            "CREATE INDEX webhook_outbox_job ON webhook_outbox (job_id)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def pending(current: int) -> list[Migration]:
    """The migrations after version `current`, in order; a database a newer release migrated
    is refused rather than misread (its rows may hold what this code does not know)."""
    if current > LATEST:
        raise RuntimeError(
            f"The job database is at schema version {current}, newer than this release's"
            f" {LATEST}: run the newer release, or point ADAPTER_JOBS_DATABASE_URL elsewhere."
        )
    return [m for m in MIGRATIONS if m.version > current]
