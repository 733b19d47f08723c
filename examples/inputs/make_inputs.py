"""Recreate the sample inputs of the curl examples (README.md, docs/pipelines.md).

    python examples/inputs/make_inputs.py

Drawn and synthesised here, so they carry no one's copyright: a 256x256 PNG of a lighthouse
at dusk (image-to-image, image-to-video), the same scene at 128x128 (upscale: its output is
512x512) and two seconds of tones as a 16 kHz mono WAV (audio-to-text).
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def lighthouse(size: int) -> Image.Image:
    """A lighthouse on a rock, the sea and a setting sun, drawn at 256x256 then resized."""
    image = Image.new("RGB", (256, 256))
    draw = ImageDraw.Draw(image)
    for y in range(160):  # sky: dusk blue to orange at the horizon
        t = y / 159
        draw.line([(0, y), (255, y)], fill=(int(40 + 200 * t), int(50 + 90 * t), int(120 - 60 * t)))
    draw.ellipse([150, 120, 200, 170], fill=(250, 200, 90))  # the sun, half set
    draw.rectangle([0, 160, 255, 255], fill=(30, 60, 100))  # the sea
    for y in range(166, 256, 9):  # waves
        draw.line([(0, y), (255, y)], fill=(60, 95, 140))
    draw.polygon([(40, 256), (70, 185), (130, 180), (160, 256)], fill=(70, 60, 55))  # the rock
    draw.polygon([(84, 185), (92, 90), (108, 90), (116, 185)], fill=(235, 235, 225))  # tower
    for y in (110, 135, 160):  # red bands
        draw.polygon([(89, y + 10), (90, y), (110, y), (111, y + 10)], fill=(190, 40, 40))
    draw.rectangle([88, 76, 112, 90], fill=(255, 240, 150))  # the lamp room
    draw.polygon([(86, 76), (100, 62), (114, 76)], fill=(190, 40, 40))  # roof
    return image if size == 256 else image.resize((size, size), Image.Resampling.LANCZOS)


def tones(path: Path, seconds: float = 2.0, rate: int = 16000) -> None:
    """Three tones one after another (440, 554, 659 Hz), 16-bit mono PCM."""
    frames = bytearray()
    count = int(seconds * rate)
    for n in range(count):
        freq = (440.0, 554.37, 659.25)[min(2, 3 * n // count)]
        envelope = min(1.0, n / 800, (count - n) / 800)
        frames += struct.pack("<h", int(12000 * envelope * math.sin(2 * math.pi * freq * n / rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))


def main() -> None:
    lighthouse(256).save(HERE / "lighthouse.png", optimize=True)
    lighthouse(128).save(HERE / "lighthouse-128.png", optimize=True)
    tones(HERE / "tones.wav")


if __name__ == "__main__":
    main()
