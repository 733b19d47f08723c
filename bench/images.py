"""Synthetic test images that compress like real ones, for timing PNG encoders.

Pure noise is incompressible and a flat colour compresses to nothing; both flatter or punish a
deflate encoder unlike a real picture. These stand in for two kinds of real output:

- `generated_like`: what a diffusion model draws: smooth colour fields and gradients with a
  fine film-grain texture.
- `photo_like`: natural-image statistics: a 1/f amplitude spectrum (the power law real photos
  follow), sharp-edged shapes, and a little sensor noise.
- `noise`: uniform noise, what a random-weight model returns; the worst case for deflate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw


def _normalise(field: np.ndarray) -> np.ndarray:
    low, high = np.percentile(field, (0.5, 99.5))
    return np.clip((field - low) / max(high - low, 1e-9), 0.0, 1.0)


def generated_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients and colour blobs with a fine grain: (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= height
    x /= width
    channels = []
    for _ in range(3):
        field = rng.uniform(0.2, 0.8) * x + rng.uniform(0.2, 0.8) * y
        for _blob in range(6):
            cy, cx = rng.uniform(0, 1, 2)
            radius = rng.uniform(0.05, 0.3)
            field += rng.uniform(-0.6, 0.6) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / radius**2)
        channels.append(_normalise(field))
    image = np.stack(channels, axis=-1) * 235.0 + 10.0
    image += rng.normal(0.0, 2.5, image.shape)  # grain
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A 1/f-spectrum scene with hard-edged shapes and sensor noise: (height, width, 3) uint8."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    falloff = np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** -1.2
    shared = rng.normal(size=(height, width // 2 + 1)) + 1j * rng.normal(
        size=(height, width // 2 + 1)
    )
    channels = []
    for _ in range(3):
        # Channels share most of their structure, as the colours of one scene do.
        own = rng.normal(size=shared.shape) + 1j * rng.normal(size=shared.shape)
        spectrum = (0.85 * shared + 0.15 * own) * falloff
        channels.append(_normalise(np.fft.irfft2(spectrum, s=(height, width))))
    texture = np.stack(channels, axis=-1) * 255.0
    # Objects: hard edges, their own colour, the scene's texture still showing through.
    mask_image = Image.new("L", (width, height), 0)
    colours = np.zeros((height, width, 3), dtype=np.float32)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width * 3 // 4 + 1)), int(rng.integers(0, height * 3 // 4 + 1))
        x1 = x0 + int(rng.integers(width // 16, width // 3 + 1))
        y1 = y0 + int(rng.integers(height // 16, height // 3 + 1))
        shape = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(shape)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=255)
        inside = np.asarray(shape) > 0
        colours[inside] = rng.uniform(0, 255, 3)
        mask_image.paste(255, mask=shape)
    mask = (np.asarray(mask_image, dtype=np.float32) / 255.0)[..., None]
    image = texture * (1 - 0.6 * mask) + colours * 0.6 * mask
    image += rng.normal(0.0, 1.5, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Uniform noise, as a random-weight model draws: (height, width, 3) uint8."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


IMAGE_KINDS: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "generated-like": generated_like,
    "photo-like": photo_like,
    "noise": noise,
}
