"""Outputs as files under one directory (by default `<ADAPTER_DATA_DIR>/outputs`).

A key is a path below the root. Each write goes to a temporary file in the same directory,
is flushed to disk and renamed over the key (os.replace is atomic on POSIX), so a crash or a
concurrent reader never sees half a file. An object's content type is kept beside it in a
small hidden file (`.<name>.type`): keys cannot start a segment with `.`, so none collides.
File work runs in threads: a video's write must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from pathlib import Path

from adapter.jobs.outputs.base import check_key, check_prefix, check_range
from contract.errors import BadRequestError, ConfigError, ServiceUnavailableError

DEFAULT_TYPE = "application/octet-stream"
RETRY_AFTER_S = 5


class LocalOutputStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"ADAPTER_JOBS_OUTPUTS_URL: cannot create the outputs directory {self.root}: "
                f"{error}"
            ) from error

    async def close(self) -> None:
        return None

    def presigned_url(self, key: str, expires_s: int) -> str | None:
        check_key(key)
        return None  # the door serves the file itself

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._put, path, data, content_type)
        except OSError as error:
            raise ServiceUnavailableError(
                f"The output store could not write {key}: {error}", RETRY_AFTER_S
            ) from error

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        return await asyncio.to_thread(_read, path, key, 0, None)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        check_range(start, end)
        path = self._path(key)
        return await asyncio.to_thread(_read, path, key, start, end)

    async def size(self, key: str) -> int:
        path = self._path(key)
        return await asyncio.to_thread(_size, path, key)

    async def content_type(self, key: str) -> str:
        path = self._path(key)
        return await asyncio.to_thread(_content_type, path, key)

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return await asyncio.to_thread(self._delete_prefix, prefix)

    # --- in a thread ------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*check_key(key).split("/"))
        # The segments are plain names, but a symbolic link inside the root could still lead
        # out of it: the resolved path must stay below the resolved root.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise BadRequestError(f"Output key {key!r} leads out of the outputs directory.")
        return path

    def _put(self, path: Path, data: bytes, content_type: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The type first: a crash between the two writes leaves a type without an object,
        # which no read sees (each looks for the object first). Keys are written once, or
        # again by a retried attempt with the same type.
        _write_atomic(_type_path(path), content_type.encode("utf-8"))
        _write_atomic(path, data)

    def _delete_prefix(self, prefix: str) -> int:
        # The deepest folder the prefix names whole; every key below it is compared with the
        # prefix as a string ("jobs/ab" matches jobs/ab/x and jobs/abc/x, as S3 does).
        folder, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not base.is_dir():
            return 0
        deleted = 0
        for directory, _dirs, files in os.walk(base, topdown=False):
            here = Path(directory)
            relative = here.relative_to(self.root).as_posix()
            for name in files:
                if name.startswith("."):
                    continue  # type files and temporary files go with their object
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    (here / name).unlink(missing_ok=True)
                    _type_path(here / name).unlink(missing_ok=True)
                    deleted += 1
            if here != self.root:
                with contextlib.suppress(OSError):  # not empty: other keys live there
                    here.rmdir()
        return deleted


def _type_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.type")


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # The rename itself survives a power cut once the folder is synced.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _read(path: Path, key: str, start: int, end: int | None) -> bytes:
    try:
        with path.open("rb") as file:
            if end is None:
                return file.read()
            size = os.fstat(file.fileno()).st_size
            if start >= size:
                raise ValueError(f"Byte {start} is past the end of {key} ({size} bytes).")
            file.seek(start)
            return file.read(min(end, size - 1) - start + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise KeyError(key) from None


def _size(path: Path, key: str) -> int:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise KeyError(key) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyError(key)  # a folder is no object
    return info.st_size


def _content_type(path: Path, key: str) -> str:
    if not path.is_file():
        raise KeyError(key)
    try:
        return _type_path(path).read_text(encoding="utf-8") or DEFAULT_TYPE
    except FileNotFoundError:
        return DEFAULT_TYPE  # written by a process that died between the two renames
