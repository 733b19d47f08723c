"""Case (d): the response encoding, our PNG data URL against Pillow's default, same pixels.

Timed on this machine's CPU at the real sizes (1024x1024 and 512x512) for the three kinds of
picture in `bench.images`; the bytes matter too, a bigger PNG costs time on the wire.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.images import IMAGE_KINDS
from bench.timing import interleaved
from functions.media import pillow_png_data_url, png_data_url

FULL_SIZES = (1024, 512)
TINY_SIZES = (64, 32)


def _png_bytes(url: str) -> int:
    return len(base64.b64decode(url.split(",", 1)[1]))


def _decoded(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _encoders(image: Image.Image) -> dict[str, Callable[[int], str]]:
    """The stock and our encoder of `image`, called with a seed as timed paths are."""
    return {
        "stock": lambda _seed: pillow_png_data_url(image),
        "ours": lambda _seed: png_data_url(image),
    }


def run_png_case(*, tiny: bool, runs: int | None, warmup: int | None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for size in TINY_SIZES if tiny else FULL_SIZES:
        for kind, make in IMAGE_KINDS.items():
            pixels = make(size, size, 0)
            image = Image.fromarray(pixels)
            encoders = _encoders(image)
            timings = interleaved(
                encoders,
                torch.device("cpu"),
                runs=runs or (3 if tiny else 10),
                warmup=1 if warmup is None else warmup,
            )
            urls = {name: encode(0) for name, encode in encoders.items()}
            rows.append(
                {
                    "size": size,
                    "image": kind,
                    "paths": {name: timing.summary() for name, timing in timings.items()},
                    "speedup": timings["stock"].median / timings["ours"].median,
                    "png_bytes": {name: _png_bytes(url) for name, url in urls.items()},
                    "lossless": {
                        name: bool(np.array_equal(_decoded(url), pixels))
                        for name, url in urls.items()
                    },
                }
            )
    realistic = [row["speedup"] for row in rows if row["image"] != "noise"]
    return {
        "case": "d",
        "title": "Response encoding: PNG data URL (lossless) vs Pillow's default",
        "target": 4.0,
        "rows": rows,
        "speedup": min(realistic),  # the worst of the realistic pictures
        "lossless": all(all(row["lossless"].values()) for row in rows),
    }
