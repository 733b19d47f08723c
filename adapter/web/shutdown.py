"""A request stopped by the server's shutdown is answered with the contract's 500.

On SIGTERM uvicorn stops accepting connections, lets the requests in flight run for the drain
deadline (`--timeout-graceful-shutdown`, which `python -m adapter` sets from
ADAPTER_SHUTDOWN_DRAIN_S) and then cancels those still running; Modal cancels the inputs of a
container it preempts. Left alone, the cancellation reaches uvicorn, which answers a plain-text
500 that go-livepeer cannot decode (its worker then returns neither result nor error). Here it
becomes the contract's JSON 500, which go-livepeer reports and retries elsewhere; the work
itself was cancelled on the way up (the generate routes cancel their backend call).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.web.auth import Refusal
from contract.errors import RunnerError

logger = logging.getLogger(__name__)

SHUTDOWN_MSG = "The runner shut down before the answer was ready."


def _request_line(scope: Scope) -> tuple[str, str]:
    return scope["method"], scope["path"]


class ShutdownAnswerMiddleware:
    def __init__(self, app: ASGIApp, refuse: Refusal) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if started:
                raise  # half an answer is out: only closing the connection is left
            logger.warning("%s %s stopped by the shutdown: answered 500", *_request_line(scope))
            answer = self.refuse(RunnerError(SHUTDOWN_MSG), scope)
            answer.headers["connection"] = "close"
            # The task ends here, answered: the server that cancelled it only waits for it.
            await answer(scope, receive, send)
