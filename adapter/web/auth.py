"""Bearer-token auth as the runner does it: 401, `WWW-Authenticate: Bearer`, contract body."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contract.errors import UnauthorizedError

_bearer = HTTPBearer(auto_error=False)


def accepted_tokens(global_token: str, entry_tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens that open the generate routes: the global one plus each entry's `token`.

    go-livepeer sends an entry's `token` on every request to that entry's `url`, so the same
    aiModels.json configures both sides. With no token anywhere, auth is off, as in the runner.
    """
    return tuple(sorted({token for token in (global_token, *entry_tokens) if token}))


def bearer_token_required(message: str) -> Callable[..., Awaitable[None]]:
    """The dependency that guards a generate route, refusing with the runner's `message`
    (its /llm and /image-to-text routes word it without the final period)."""

    # async: a plain `def` dependency costs every request a hop to the thread pool and back.
    async def require_bearer_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        tokens: tuple[str, ...] = request.app.state.service.tokens
        if not tokens:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        # Compare against every token, without stopping early, so timing reveals nothing.
        matches = [secrets.compare_digest(given, token.encode()) for token in tokens]
        if credentials is None or not any(matches):
            raise UnauthorizedError(message)

    return require_bearer_token
