"""The lossless PNG encoders considered for `functions.media`, timed side by side.

    python -m bench.png_survey [--runs 7]

Each candidate makes the whole data URL (PNG + base64) of the images of `bench.images` at
1024x1024 and 512x512; its output is decoded by Pillow and must equal the input. Candidates
whose package is not installed are skipped (only Pillow and isal are project dependencies;
the others were installed in a scratch environment for the survey:
`pip install imagecodecs opencv-python-headless zlib-ng fpng`).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from bench.images import IMAGE_KINDS
from functions.media import encode_png

Encoder = Callable[[np.ndarray], bytes]


def _pillow(**options: object) -> Encoder:
    def encode(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", **options)
        return buffer.getvalue()

    return encode


def _up_filter_png(compress: Callable[[bytes], bytes]) -> Encoder:
    """Our writer (up filter) with another deflate: isolates the deflate library's share."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
        )

    def encode(pixels: np.ndarray) -> bytes:
        height, width, channels = pixels.shape
        rows = pixels.reshape(height, width * channels)
        filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
        filtered[:, 0] = 2
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", compress(filtered.tobytes()))
            + chunk(b"IEND", b"")
        )

    return encode


def candidates() -> dict[str, Encoder]:
    found: dict[str, Encoder] = {
        "Pillow default (zlib 6, adaptive filters): the runner's": _pillow(),
        "Pillow compress_level=1": _pillow(compress_level=1),
        "up filter + zlib 1 (stdlib)": _up_filter_png(lambda data: zlib.compress(data, 1)),
        "ours: up filter + ISA-L deflate 1 (isal)": encode_png,
    }
    try:
        import cv2

        found["OpenCV imencode, default"] = lambda pixels: cv2.imencode(
            ".png", np.ascontiguousarray(pixels[..., ::-1])
        )[1].tobytes()
    except ImportError:
        pass
    try:
        import imagecodecs

        found["imagecodecs png level 1, RLE, sub filter"] = lambda pixels: imagecodecs.png_encode(
            pixels, level=1, strategy=3, filter=16
        )
        found["imagecodecs spng level 1"] = lambda pixels: imagecodecs.spng_encode(pixels, level=1)
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        found["up filter + zlib-ng 1"] = _up_filter_png(lambda data: zlib_ng.compress(data, 1))
    except ImportError:
        pass
    try:
        import fpng

        found["fpng 0.1.0 (unmaintained: one release)"] = lambda pixels: bytes(
            fpng.from_ndarray(pixels)
        )
    except ImportError:
        pass
    return found


def survey(runs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    encoders = candidates()
    for size in (1024, 512):
        for kind, make in IMAGE_KINDS.items():
            pixels = make(size, size, 0)
            for name, encode in encoders.items():
                png = encode(pixels)
                lossless = np.array_equal(
                    np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), pixels
                )
                samples = []
                for _ in range(runs):
                    start = time.perf_counter()
                    "data:image/png;base64," + base64.b64encode(encode(pixels)).decode("ascii")
                    samples.append(time.perf_counter() - start)
                rows.append(
                    {
                        "size": size,
                        "image": kind,
                        "encoder": name,
                        "median_s": statistics.median(samples),
                        "png_bytes": len(png),
                        "lossless": lossless,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    rows = survey(parser.parse_args().runs)
    baseline = {
        (row["size"], row["image"]): row["median_s"]
        for row in rows
        if str(row["encoder"]).startswith("Pillow default")
    }
    print("| size | image | encoder | data URL ms | vs Pillow default | PNG MB | lossless |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        base = baseline[(row["size"], row["image"])]
        print(
            f"| {row['size']} | {row['image']} | {row['encoder']} | "
            f"{float(row['median_s']) * 1e3:.1f} | {base / float(row['median_s']):.1f}x | "
            f"{int(row['png_bytes']) / 1e6:.2f} | {row['lossless']} |"
        )


if __name__ == "__main__":
    main()
