"""Bearer-token auth as the runner does it: 401, `WWW-Authenticate: Bearer`, contract body.

The token is checked before any byte of the body is read: `BearerAuthMiddleware` answers the
route's 401 from the request's headers alone, without calling `receive()`. uvicorn sends an
`Expect: 100-continue` client its `100 Continue` only when the app first calls `receive()`, so
such a client gets its 401 without uploading anything, and any other client's unread body is
dropped with the connection. The route dependency (`bearer_token_required`) stays: it declares
the scheme in the OpenAPI document and checks again behind the middleware.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, TypeAlias

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.errors import RunnerError, UnauthorizedError
from contract.pipelines import PIPELINE_SPECS, PipelineSpec

_bearer = HTTPBearer(auto_error=False)

# How an error answers: the error mapping's response for the route of the scope.
Refusal: TypeAlias = Callable[[RunnerError, Scope], Response]


def accepted_tokens(global_token: str, entry_tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens that open the generate routes: the global one plus each entry's `token`.

    go-livepeer sends an entry's `token` on every request to that entry's `url`, so the same
    aiModels.json configures both sides. With no token anywhere, auth is off, as in the runner.
    """
    return tuple(sorted({token for token in (global_token, *entry_tokens) if token}))


def token_accepted(given: str | None, tokens: tuple[str, ...]) -> bool:
    """Whether `given` (a bearer token, None when absent) opens the routes; always True when
    no token is configured."""
    if not tokens:
        return True
    raw = given.encode() if given is not None else b""
    # Compare against every token, without stopping early, so timing reveals nothing.
    matches = [secrets.compare_digest(raw, token.encode()) for token in tokens]
    return given is not None and any(matches)


def bearer_credentials(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as FastAPI's HTTPBearer reads it;
    None when the header is absent, empty or of another scheme."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def bearer_token_required(message: str) -> Callable[..., Awaitable[None]]:
    """The dependency that guards a generate route, refusing with the runner's `message`
    (its /llm and /image-to-text routes word it without the final period)."""

    # async: a plain `def` dependency costs every request a hop to the thread pool and back.
    async def require_bearer_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = credentials.credentials if credentials is not None else None
        if not token_accepted(given, request.app.state.service.tokens):
            raise UnauthorizedError(message)

    return require_bearer_token


def guarded_paths(specs: Iterable[PipelineSpec]) -> dict[str, str]:
    """Each generate route's path (both spellings, as the router serves them) and its 401."""
    paths = {}
    for spec in specs:
        for path in (f"/{spec.pipeline.value}", f"/{spec.pipeline.value}/"):
            paths[path] = spec.unauthorized_msg
    return paths


def install_bearer_auth(
    app: FastAPI,
    tokens: tuple[str, ...],
    refuse: Refusal,
    also: Mapping[str, str] | None = None,
) -> None:
    """Check the token of every generate route before its body (nothing to check without one);
    `also` adds other POST paths and their 401 messages (the jobs door's submit)."""
    if tokens:
        app.add_middleware(
            BearerAuthMiddleware,
            protected={**guarded_paths(PIPELINE_SPECS.values()), **(also or {})},
            tokens=tokens,
            refuse=refuse,
        )


class BearerAuthMiddleware:
    """Refuse a POST to a guarded path whose token is missing or wrong, from its headers.

    `protected` maps each guarded path to its route's 401 message. Only POST is checked, so
    another method still gets the router's 405. The refusal closes the connection when a body
    was announced: keeping it open would make the server read (and drop) the whole upload
    before the next request.
    """

    def __init__(
        self,
        app: ASGIApp,
        protected: Mapping[str, str],
        tokens: tuple[str, ...],
        refuse: Refusal,
    ) -> None:
        self.app = app
        self.protected = dict(protected)
        self.tokens = tokens
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = None
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root_path: str = scope.get("root_path", "")
            if root_path and path.startswith(root_path):
                path = path[len(root_path) :]  # as the router sees it (uvicorn --root-path)
            message = self.protected.get(path)
        if message is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        given = bearer_credentials(authorization.decode("latin-1") if authorization else None)
        if token_accepted(given, self.tokens):
            await self.app(scope, receive, send)
            return
        refusal = self.refuse(UnauthorizedError(message), scope)
        if _announces_body(headers):
            refusal.headers["connection"] = "close"
        await refusal(scope, receive, send)


def _announces_body(headers: Mapping[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0
