"""Per-model capacity: at most N requests in flight, a bounded FIFO wait queue, then a refusal.

go-livepeer reserves one unit of an external container's `capacity` per in-flight request and
answers 503 itself at zero, so a single orchestrator never sends more than `capacity` at once.
The queue absorbs what arrives beyond that from elsewhere (several orchestrators, direct
clients, a request that arrives as another's slot is being returned). The refusal says
`insufficient capacity`, as go-livepeer's own does, so its gateway retries another orchestrator
without suspending this one; it answers 500 on go-livepeer's routes (503 where allowed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from contract.errors import INSUFFICIENT_CAPACITY, OverloadedError


class CapacityLimiter:
    def __init__(
        self,
        name: str,
        max_in_flight: int,
        max_queue: int,
        queue_timeout_s: float,
        retry_after_s: int,
    ) -> None:
        if max_in_flight < 1 or max_queue < 0:
            raise ValueError(f"{name}: max_in_flight must be >= 1 and max_queue >= 0")
        self.name = name
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._listeners: list[Callable[[], None]] = []

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    @property
    def has_free_slot(self) -> bool:
        """Whether a request arriving now would start at once, without waiting."""
        return self._in_flight < self.max_in_flight and not self.queued

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (on the event loop, so it must not block) whenever the number in
        flight changes: for whoever reports how full the model is (the workerbee worker)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot for the duration of the block."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    def refuse_if_full(self) -> None:
        """Refuse now, before any work on the request, if it could not even wait for a slot."""
        if self._in_flight >= self.max_in_flight and self.queued >= self.max_queue:
            raise self._overloaded("the wait queue is full")

    def _overloaded(self, why: str) -> OverloadedError:
        return OverloadedError(
            f"Model {self.name} has {INSUFFICIENT_CAPACITY} ({self.max_in_flight} in flight, "
            f"{self.max_queue} waiting): {why}. Retry later.",
            retry_after_s=self.retry_after_s,
        )

    async def _acquire(self) -> None:
        if self._in_flight < self.max_in_flight and not self._waiters:
            self._in_flight += 1
            self._changed()
            return
        if self.queued >= self.max_queue:
            raise self._overloaded("the wait queue is full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, self.queue_timeout_s)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us just as we gave up: pass it on.
                self._release()
            else:
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise self._overloaded(f"no slot freed within {self.queue_timeout_s:g} s") from None
            raise

    def _release(self) -> None:
        # A freed slot goes straight to the oldest waiter, so in_flight never dips and a
        # newcomer cannot overtake the queue.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1
        self._changed()
