"""Opening the SQLite job store's file robustly, when several stores (processes, replicas on one
file, tests) open it at once.

busy_timeout is set on the connection before anything else, so each later statement waits for
a lock rather than failing. Some steps are answered "database is locked" at once all the same:
switching to WAL takes an exclusive lock without the busy handler, and SQLite refuses a wait it
judges a deadlock. Those steps are retried with a growing pause until busy_timeout has passed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def is_locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def retry_locked(step: Callable[[], T], timeout_s: float) -> T:
    """`step()`, again while it fails with a lock held elsewhere, for up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in WAL mode with busy_timeout set; its own transactions (no implicit ones:
    each change says BEGIN IMMEDIATE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout_s)
        # In WAL mode NORMAL loses no committed row on a process crash (only on power loss).
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn
