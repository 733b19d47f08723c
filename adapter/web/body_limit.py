"""Refuse request bodies over the byte limit with 413 and the contract's error body.

Pure ASGI, so the limit holds for chunked uploads too, before anything is parsed or stored.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.errors import PayloadTooLargeError, RunnerError

# How an error answers (adapter.errors.ErrorMapping.response): the status the route declares.
Refusal = Callable[[RunnerError, Scope], Response]


def install_body_limit(app: FastAPI, max_bytes: int, max_json_bytes: int, refuse: Refusal) -> None:
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=max_bytes, max_json_bytes=max_json_bytes, refuse=refuse
    )


class BodyLimitMiddleware:
    """The error is raised from `receive` while the app reads the body. FastAPI wraps whatever
    its body reader raises in a 400 `from` it; the error mapping answers with the cause."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_json_bytes: int, refuse: Refusal) -> None:
        self.app = app
        self.refuse = refuse
        self.max_bytes = max_bytes
        # JSON is parsed whole on the event loop (before auth, by FastAPI): a tighter bound.
        self.max_json_bytes = max_json_bytes

    def _limit(self, headers: dict[bytes, bytes]) -> tuple[int, str]:
        is_json = b"json" in headers.get(b"content-type", b"").lower()
        if is_json and self.max_json_bytes < self.max_bytes:
            return self.max_json_bytes, "ADAPTER_MAX_JSON_REQUEST_BYTES"
        return self.max_bytes, "ADAPTER_MAX_REQUEST_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        max_bytes, name = self._limit(headers)

        def too_large() -> PayloadTooLargeError:
            return PayloadTooLargeError(f"Request body is over the limit {name}={max_bytes}.")

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self.refuse(too_large(), scope)(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLargeError as exc:
            if not started:
                await self.refuse(exc, scope)(scope, receive, send)
