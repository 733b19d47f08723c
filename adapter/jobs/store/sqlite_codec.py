"""How a job row is written to and read from SQLite: times as integer microseconds since the
epoch (UTC), JSON columns and the outputs as JSON text, booleans as 0 or 1."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.jobs.model import JobRecord, JobStatus, OutputFile
from adapter.jobs.store import sql

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
JSON_COLUMNS = frozenset({"params", "metadata", "result_data"})


def to_us(when: datetime | None) -> int | None:
    return None if when is None else (when - EPOCH) // MICROSECOND


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * MICROSECOND


def encode(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return to_us(value)
    if name in JSON_COLUMNS:
        return json.dumps(value)
    if name == "outputs":
        return json.dumps([asdict(o) for o in value])
    if name == "cancel_requested":
        return int(value)
    if isinstance(value, JobStatus):
        return value.value
    return value


def decode(row: sqlite3.Row) -> JobRecord:
    values: dict[str, Any] = {}
    for name in sql.COLUMNS:
        value = row[name]
        if name.endswith("_at"):
            value = from_us(value)
        elif name in JSON_COLUMNS:
            value = json.loads(value)
        elif name == "outputs":
            value = tuple(OutputFile(**o) for o in json.loads(value))
        elif name == "status":
            value = JobStatus(value)
        elif name == "cancel_requested":
            value = bool(value)
        values[name] = value
    return JobRecord(**values)
