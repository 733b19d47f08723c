"""Decoding the runner's PNG data URLs in tests."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

PREFIX = "data:image/png;base64,"


def decode(url: str) -> Image.Image:
    assert url.startswith(PREFIX), url[:40]
    image = Image.open(io.BytesIO(base64.b64decode(url[len(PREFIX) :])))
    assert image.format == "PNG"
    image.load()
    return image


def pixels(url: str) -> np.ndarray:
    return np.asarray(decode(url).convert("RGB"), dtype=np.int16)
