"""Bounded time to read a request: its headers (a uvicorn protocol class), its body (ASGI).

uvicorn closes a keep-alive connection left idle after an answer (5 s), but sets no limit on
reading a request: a client trickling its headers, or a multipart body, at a byte a second pins
a socket for as long as it likes. Here

- `HeaderTimeoutH11Protocol` (uvicorn's h11 protocol with a deadline) gives each request
  `header_timeout_s` from its connection, or from the first byte after the previous answer, to
  finish its headers. A connection that sent nothing is closed silently; one that sent part of
  a request gets the contract's 400 first. `python -m adapter` runs with it; plain uvicorn
  does with `--http adapter.web.timeouts:HeaderTimeoutH11Protocol` (adapter.main sets the
  deadline from ADAPTER_HEADER_TIMEOUT_S).
- `BodyTimeoutMiddleware` (pure ASGI, under any server, Modal's included) gives the body
  `body_timeout_s` from the end of the headers; then 400 with the contract's body, and the
  connection is closed. Once the body is in, `receive()` waits unbounded again: the generate
  routes wait there for the client's disconnect.

400 because go-livepeer decodes only the statuses the spec declares (408 is not one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from adapter.web.auth import Refusal
from contract.errors import BadRequestError, error_body

logger = logging.getLogger(__name__)

HEADER_TIMEOUT_ENV = "ADAPTER_HEADER_TIMEOUT_S"
BODY_TIMEOUT_ENV = "ADAPTER_BODY_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0


def header_timeout_message(seconds: float) -> str:
    return f"Request headers not received within {HEADER_TIMEOUT_ENV}={seconds:g} s."


def body_timeout_message(seconds: float) -> str:
    return f"Request body not received within {BODY_TIMEOUT_ENV}={seconds:g} s."


# --- headers: a uvicorn protocol ---------------------------------------------------------


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers.

    The timer runs from the connection's opening, and on a kept-alive connection from the
    first byte of the next request; it stops when h11 has parsed the request line and headers.
    uvicorn makes one instance per connection; `header_timeout_s` is set on the class, by the
    entrypoint, before the server starts.
    """

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._cycle_when_armed: object | None = None
        self._bytes_since_armed = 0

    def _arm(self) -> None:
        self._disarm()
        self._cycle_when_armed = self.cycle
        self._bytes_since_armed = 0
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn types `cycle` as set, but it is None until the first request's headers.
        between_requests = self.cycle is None or self.cycle.response_complete  # type: ignore[redundant-expr]
        if self._header_timer is None and between_requests:
            self._arm()  # the first byte of the next request on a kept-alive connection
        self._bytes_since_armed += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._cycle_when_armed:
            self._disarm()  # h11 parsed a request: its headers are complete

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._bytes_since_armed and self.conn.our_state is h11.IDLE:
            msg = header_timeout_message(self.header_timeout_s)
            logger.info("closing %s: %s", _peer(self.client), msg)
            body = json.dumps(error_body(msg)).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            try:
                output = self.conn.send(
                    h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
                )
                output = (output or b"") + (self.conn.send(h11.Data(data=body)) or b"")
                output += self.conn.send(h11.EndOfMessage()) or b""
                self.transport.write(output)
            except h11.LocalProtocolError:
                pass  # h11 will not answer in this state: close without a word
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


# --- body: an ASGI receive wrapper -------------------------------------------------------


class BodyTimedOut(HTTPException):
    """Raised by `receive()` when the body is late. An HTTPException, so FastAPI's body reader
    lets it through instead of making it a 400 of its own; rendered as the contract's 400."""

    def __init__(self, seconds: float) -> None:
        self.error = BadRequestError(body_timeout_message(seconds))
        super().__init__(status_code=400, detail=self.error.msg)


def install_body_timeout(app: FastAPI, seconds: float, refuse: Refusal) -> None:
    def handle_body_timed_out(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTimedOut)
        return _refusal(exc, request.scope, refuse)

    app.add_middleware(BodyTimeoutMiddleware, seconds=seconds, refuse=refuse)
    # Looked up by MRO: this one, not the handler of HTTPException, answers a late body.
    app.add_exception_handler(BodyTimedOut, handle_body_timed_out)


def _refusal(exc: BodyTimedOut, scope: Scope, refuse: Refusal) -> Response:
    response = refuse(exc.error, scope)
    # The rest of the body may still be on its way: reading it would defeat the deadline.
    response.headers["connection"] = "close"
    return response


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, seconds: float, refuse: Refusal) -> None:
        self.app = app
        self.seconds = seconds
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                logger.info(
                    "closing %s: %s",
                    _peer(scope.get("client")),
                    body_timeout_message(self.seconds),
                )
                raise BodyTimedOut(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyTimedOut as exc:
            # Raised outside the exception handler's reach (a middleware reading the body).
            if started:
                raise
            await _refusal(exc, scope, self.refuse)(scope, receive, send)
