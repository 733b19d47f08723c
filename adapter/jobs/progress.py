"""A running job's progress: the latest step its pipeline reported, written to the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress


class StepTracker:
    """The latest (step, total) a pipeline reported from its thread, handed to the event loop
    without blocking that thread; the writer stores only the latest, however fast steps come."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.latest: tuple[int, int] | None = None
        self.written: tuple[int, int] | None = None
        self._loop = loop
        self._changed = asyncio.Event()

    def on_step(self, step: int, total: int) -> None:  # on the model's thread
        self.latest = (step, total)
        with suppress(RuntimeError):  # the loop has closed: no one reads progress any more
            self._loop.call_soon_threadsafe(self._changed.set)

    async def write_each(self, write: Callable[[int, int], Awaitable[None]]) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self.flush(write)

    async def flush(self, write: Callable[[int, int], Awaitable[None]]) -> None:
        latest = self.latest
        if latest is not None and latest != self.written:
            self.written = latest
            await write(*latest)
