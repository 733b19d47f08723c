"""Bearer-token auth as the runner does it: 401, `WWW-Authenticate: Bearer`, contract body."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapter.errors import UnauthorizedError

_bearer = HTTPBearer(auto_error=False)


def accepted_tokens(global_token: str, entry_tokens: tuple[str, ...]) -> tuple[str, ...]:
    """The tokens that open the generate routes: the global one plus each entry's `token`.

    go-livepeer sends an entry's `token` on every request to that entry's `url`, so the same
    aiModels.json configures both sides. With no token anywhere, auth is off, as in the runner.
    """
    return tuple(sorted({token for token in (global_token, *entry_tokens) if token}))


async def require_bearer_token(
    # async: a plain `def` dependency costs every request a hop to the thread pool and back.
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
        raise UnauthorizedError("Invalid bearer token.")
