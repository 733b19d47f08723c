"""The output store's interface: a job's files (and its uploads) by key.

Keys are relative, `/`-separated paths that our code builds (`jobs/<job_id>/image-0.png`,
`inputs/<job_id>/image`); an output's name comes from a URL, so every store checks each key
with `check_key` and refuses one that could leave its root. Both stores behave the same: one
test module runs against the local directory and against a real S3-compatible server.
"""

from __future__ import annotations

from typing import Protocol

from contract.errors import BadRequestError

MAX_KEY_BYTES = 1024  # S3's own limit on a key, kept by the local store too
# SigV4 signatures live at most a week.
MAX_PRESIGN_S = 7 * 24 * 3600


class OutputStore(Protocol):
    async def open(self) -> None:
        """Check the store can be used before the first job: the local store creates its
        directory; S3 checks that the bucket exists and answers (it creates nothing). Raises
        contract.errors.ConfigError naming the setting at fault."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store the whole object at once: a reader sees the old object or the new one, never
        part of it."""

    async def get(self, key: str) -> bytes:
        """The whole object; raises KeyError when there is none."""

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end inclusive (an HTTP Range); `end` past the last byte reads to the
        end. KeyError when there is no object; ValueError when start < 0, start > end or
        start is past the last byte (the caller answers 416)."""

    async def size(self, key: str) -> int:
        """The object's length in bytes; KeyError when there is none."""

    async def content_type(self, key: str) -> str:
        """The type given to `put`; KeyError when there is no object."""

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        """A link a browser can fetch without our token for `expires_s` seconds, where the store
        supports it (None: the caller serves the bytes itself). Computed locally: no request."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (a string prefix, as S3 has it:
        end it with `/` to mean one folder); the number deleted. An empty prefix is refused."""

    async def close(self) -> None: ...


def check_key(key: str) -> str:
    """`key` if it is a safe relative key, else BadRequestError (a 400 for a name from a URL).

    Refused: empty, absolute (`/x`), a backslash, control characters, empty, `.` or `..`
    segments, and segments that start with `.` (the local store keeps its temporary files and
    content types under such names, so no key can reach them).
    """
    if not key:
        raise BadRequestError("An output key must be a non-empty path.")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequestError(f"An output key is at most {MAX_KEY_BYTES} bytes.")
    if "\\" in key or any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise BadRequestError(f"Output key {key!r} has a backslash or a control character.")
    if key.startswith("/"):
        raise BadRequestError(f"Output key {key!r} is absolute.")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise BadRequestError(
                f"Output key {key!r} has an empty segment or one starting with '.'."
            )
    return key


def check_prefix(prefix: str) -> str:
    """A prefix for delete_prefix: a key, optionally ending with `/`; never empty (that would
    delete everything)."""
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"Bad byte range {start}-{end}.")


def check_expiry(expires_s: int) -> None:
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise ValueError(f"A link's expiry is 1 to {MAX_PRESIGN_S} seconds, not {expires_s}.")
