"""How a job row is written to and read from PostgreSQL: JSON columns and the outputs as JSONB,
times as timestamptz (read back in UTC)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from adapter.jobs.model import JobRecord, JobStatus, OutputFile

Row = dict[str, Any]
JSON_COLUMNS = frozenset({"params", "metadata", "result_data"})


def encode(name: str, value: Any) -> Any:
    if name in JSON_COLUMNS:
        return Jsonb(value)
    if name == "outputs":
        return Jsonb([asdict(o) for o in value])
    if isinstance(value, JobStatus):
        return value.value
    return value


def decode(row: Row) -> JobRecord:
    values = dict(row)
    for name, value in row.items():
        if isinstance(value, datetime):
            values[name] = value.astimezone(UTC)
    values["status"] = JobStatus(row["status"])
    values["outputs"] = tuple(OutputFile(**o) for o in row["outputs"])
    return JobRecord(**values)
