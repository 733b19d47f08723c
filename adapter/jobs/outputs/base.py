"""The output store's interface: a job's files (and its uploads) by key."""

from __future__ import annotations

from typing import Protocol


class OutputStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes:
        """The whole object; raises KeyError when there is none."""

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end inclusive (an HTTP Range)."""

    async def size(self, key: str) -> int: ...

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A link a browser can fetch without our token, where the store supports it."""

    async def delete_prefix(self, prefix: str) -> None: ...

    async def close(self) -> None: ...
