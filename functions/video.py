"""MP4 files of generated frames, playable in every browser.

H.264 (libx264, which PyAV's wheel bundles) in 4:2:0 (`yuv420p`, the only chroma layout every
browser and phone decodes in hardware), BT.709 colour, tagged as such so players do not guess,
and the `moov` index at the front of the file (`faststart`) so a browser can start playing
while the rest is still downloading (a Range request of the first bytes is enough).

4:2:0 halves the colour planes in both directions, so both sides of a frame must be even. A
frame with an odd side is **padded** by one row or column repeating its last one (the edge
pixels appear twice); nothing is cropped, so every generated pixel is in the file. Pipelines
produce multiples of 8 anyway, so this only matters for callers with odd sizes.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

MP4_CONTENT_TYPE = "video/mp4"
# Constant quality: 18 is close to visually lossless for x264, which suits a generated video
# that may be edited again; a tiny video costs kilobytes either way.
CRF = 18
# "fast" is within a few % of "medium"'s size at this CRF and about twice as fast: the encode
# runs on the request's path after the GPU work.
PRESET = "fast"
# Frame rates are stored as fractions; this bounds the denominator (NTSC's 30000/1001 fits).
MAX_FPS_DENOMINATOR = 1001


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size a frame of `width` x `height` has in the MP4: each side rounded up to even."""
    return width + width % 2, height + height % 2


def _even_rgb(frame: Image.Image, size: tuple[int, int]) -> np.ndarray:
    pixels = np.asarray(frame.convert("RGB"))
    pad_rows = size[1] - pixels.shape[0]
    pad_columns = size[0] - pixels.shape[1]
    if pad_rows or pad_columns:
        pixels = np.pad(pixels, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")
    return np.ascontiguousarray(pixels)


def encode_mp4(frames: Sequence[Image.Image], fps: float) -> bytes:
    """An H.264 MP4 of `frames` in order, at `fps` frames a second.

    All frames must have the first one's size; any Pillow mode is converted to RGB first. An
    odd side is padded to even (see the module's docstring).
    """
    if not frames:
        raise ValueError("a video needs at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    width, height = frames[0].size
    for index, frame in enumerate(frames):
        if frame.size != (width, height):
            raise ValueError(
                f"frame {index} is {frame.size[0]}x{frame.size[1]}, frame 0 is {width}x{height}"
            )
    size = even_size(width, height)
    rate = Fraction(fps).limit_denominator(MAX_FPS_DENOMINATOR)
    # faststart: the muxer writes the index last, then moves it to the front in a second pass
    # that reopens the output by its name, so the file is written to a temporary file (FFmpeg
    # cannot reopen an in-memory buffer: it fails with "No such file or directory: '<none>'").
    with tempfile.TemporaryDirectory(prefix="mp4-") as directory:
        path = Path(directory) / "video.mp4"
        _write(path, frames, size, rate)
        return path.read_bytes()


def mp4_data_url(mp4: bytes) -> str:
    """A `data:video/mp4;base64,...` URL, how a JSON answer carries a video."""
    return f"data:{MP4_CONTENT_TYPE};base64," + base64.b64encode(mp4).decode("ascii")


def _write(
    path: Path, frames: Sequence[Image.Image], size: tuple[int, int], rate: Fraction
) -> None:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "crf": str(CRF),
            "preset": PRESET,
            "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709",
        }
        for frame in frames:
            rgb = av.VideoFrame.from_ndarray(_even_rgb(frame, size), format="rgb24")
            yuv = rgb.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG")
            for packet in stream.encode(yuv):
                output.mux(packet)
        for packet in stream.encode(None):  # flush the encoder's delayed frames
            output.mux(packet)
