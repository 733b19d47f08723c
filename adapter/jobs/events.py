"""A job's server-sent events: its public JSON each time it changes, until it ends.

The stream reads the job from the store (not from this process's runner), so it follows a job
whichever replica runs it. A comment line keeps idle connections (and proxies) open; the stream
closes once the job has ended, or after `max_s` (the client reconnects).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from adapter.jobs.views import Job

KEEPALIVE_S = 15.0


def sse_event(job: Job) -> bytes:
    data = job.model_dump_json()
    return f"event: job\nid: {job.updated_at.isoformat()}\ndata: {data}\n\n".encode()


async def job_events(
    load: Callable[[], Awaitable[Job | None]], poll_s: float, max_s: float
) -> AsyncIterator[bytes]:
    """Events of the job `load` reads, each time its JSON differs from the last one sent."""
    started = last_sent = time.monotonic()
    previous: str | None = None
    while True:
        job = await load()
        if job is None:  # purged meanwhile
            return
        current = job.model_dump_json()
        if current != previous:
            previous = current
            last_sent = time.monotonic()
            yield sse_event(job)
        if job.status.terminal:
            return
        now = time.monotonic()
        if now - started > max_s:
            return
        if now - last_sent > KEEPALIVE_S:
            last_sent = now
            yield b": keep-alive\n\n"
        await asyncio.sleep(poll_s)
