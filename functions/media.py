"""Media encodings of the runner contract.

Every image the runner returns is a PNG data URL, and encoding it is on each request's path:
Pillow's default PNG (zlib level 6, adaptive filters) takes 0.1-0.4 s of one core for a
1024x1024 picture, as long as the GPU work of a one-step model. `encode_png` writes the same
pixels losslessly in a few milliseconds: the PNG "up" filter in numpy, then deflate at level 1
by Intel's ISA-L (`isal`), whose level 1 is several times faster than zlib's and compresses
about as well as Pillow's default on real pictures (see BENCHMARKS.md, case d).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from isal import isal_zlib
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type of each Pillow mode written directly; other modes go through Pillow.
_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_CHANNEL_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_FILTER_UP = 2
# ISA-L level 1: about 1 GB/s of filtered rows on one core, within a few % of zlib 6's size.
DEFLATE_LEVEL = 1


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))  # without concatenating megabytes first
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _up_filtered(rows: np.ndarray) -> np.ndarray:
    """Each scanline prefixed with filter type 2 ("up") and replaced by its difference with
    the scanline above, modulo 256 (PNG spec 9.2); the first row is kept as it is."""
    height, stride = rows.shape
    filtered = np.empty((height, stride + 1), dtype=np.uint8)
    filtered[:, 0] = _FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    return filtered


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless 8-bit PNG of `pixels`: (height, width) grey, or (height, width, C) with C of
    1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), dtype uint8."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in _CHANNEL_COLOUR_TYPES:
        raise ValueError(f"pixels must be (height, width[, 1-4 channels]), got {pixels.shape}")
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise ValueError(f"an image needs at least one pixel, got {width}x{height}")
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _CHANNEL_COLOUR_TYPES[channels], 0, 0, 0)
    data = isal_zlib.compress(_up_filtered(rows), DEFLATE_LEVEL)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def image_png(image: Image.Image) -> bytes:
    """The PNG bytes of a Pillow image, losslessly: fast for L, LA, RGB and RGBA (every
    pipeline's output); any other mode (palette, 16-bit, CMYK...) through Pillow."""
    if image.mode in _COLOUR_TYPES:
        return encode_png(np.asarray(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_data_url(image: Image.Image | np.ndarray) -> str:
    """A `data:image/png;base64,...` URL, the only image form the runner returns."""
    png = encode_png(image) if isinstance(image, np.ndarray) else image_png(image)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_ENCODERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="png")


def png_data_urls(images: Sequence[Image.Image | np.ndarray]) -> list[str]:
    """Data URLs of several images (a video's frames), encoded in parallel: the filter and
    the deflate release the GIL, so frames spread over the cores."""
    if len(images) < 2:
        return [png_data_url(image) for image in images]
    return list(_ENCODERS.map(png_data_url, images))


def pillow_png_data_url(image: Image.Image) -> str:
    """The data URL as Livepeer's runner makes it (Pillow's default PNG): the baseline."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
