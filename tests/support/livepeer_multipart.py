"""Multipart bodies written the way go-livepeer writes them (`ai/worker/multipart.go`).

The file part comes first, named after the route's file field, with the original file name and
Content-Type application/octet-stream; then only the fields that are set, as strings: floats in
Go's %f (six decimals), ints in decimal, bools as true/false. Built by hand because httpx puts
form fields before files.
"""

from __future__ import annotations

import io
import secrets
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image


def go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


def go_multipart(
    file_bytes: bytes, filename: str = "input.png", field: str = "image", **fields: Any
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of go-livepeer's request; `fields` are those it would set."""
    boundary = secrets.token_hex(30)
    parts = [
        (
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + file_bytes
    ]
    for name, value in fields.items():
        parts.append(
            f'Content-Disposition: form-data; name="{name}"\r\n\r\n{go_value(value)}'.encode()
        )
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_image(client: Any, route: str, file_bytes: bytes, **fields: Any) -> Any:
    """POST like go-livepeer to `route` with `client` (httpx or TestClient)."""
    filename = fields.pop("filename", "input.png")
    body, headers = go_multipart(file_bytes, filename, **fields)
    return client.post(route, content=body, headers=headers)


# --- input images --------------------------------------------------------------------------


def noise_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    return encode(noise_image(width, height, seed))


def png_header_claiming(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header declares `width` x `height` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def wav_bytes() -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 1600)
    return buffer.getvalue()
