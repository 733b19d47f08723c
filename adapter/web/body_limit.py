"""Refuse request bodies over the byte limit with 413 and the contract's error body.

Pure ASGI, so the limit holds for chunked uploads too, before anything is parsed or stored.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.errors import error_response
from contract.errors import PayloadTooLargeError


class BodyTooLarge(HTTPException):
    """Raised while reading the body. An HTTPException, so FastAPI's body reader lets it through
    instead of making it a 400; `install_body_limit` renders it as the contract's 413."""

    def __init__(self, error: PayloadTooLargeError) -> None:
        super().__init__(status_code=413, detail=error.msg)
        self.error = error


def install_body_limit(
    app: FastAPI, max_bytes: int, max_json_bytes: int, declared_only: bool
) -> None:
    def handle_body_too_large(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTooLarge)
        return error_response(exc.error, request.url.path, declared_only)

    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=max_bytes,
        max_json_bytes=max_json_bytes,
        declared_only=declared_only,
    )
    app.add_exception_handler(BodyTooLarge, handle_body_too_large)


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int, max_json_bytes: int, declared_only: bool
    ) -> None:
        self.app = app
        self.declared_only = declared_only
        self.max_bytes = max_bytes
        # JSON is parsed whole on the event loop (before auth, by FastAPI): a tighter bound.
        self.max_json_bytes = max_json_bytes

    def _limit(self, headers: dict[bytes, bytes]) -> tuple[int, str]:
        is_json = b"json" in headers.get(b"content-type", b"").lower()
        if is_json and self.max_json_bytes < self.max_bytes:
            return self.max_json_bytes, "max_json_request_bytes"
        return self.max_bytes, "max_request_bytes"

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
            refusal = error_response(too_large(), scope["path"], self.declared_only)
            await refusal(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(too_large())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                refusal = error_response(too_large(), scope["path"], self.declared_only)
                await refusal(scope, receive, send)
