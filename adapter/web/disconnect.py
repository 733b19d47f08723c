"""Stop work whose client has gone.

Starlette does not cancel a request handler when its client disconnects: the handler would run
to the end, and a GPU would finish an image nobody will read. The generate routes race their
work against the client's disconnect message and cancel the work when it comes, which the
backends turn into stopping the pipeline (local) or cancelling the remote call (Modal, HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from contract.errors import ClientDisconnectedError

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body has been read by now, so the next message is the disconnect (uvicorn sends it
    # when the connection closes; it never comes while the client waits).
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientDisconnectedError("The client disconnected before the answer was ready.")
    return task.result()
