"""The MP4 encoder: H.264 in yuv420p that decodes back to the frames, index at the front."""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from functions.video import encode_mp4, even_size


def gradient_frames(count: int, width: int, height: int) -> list[Image.Image]:
    """Smooth frames (what lossy video keeps well), each a little different from the last."""
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for index in range(count):
        red = (xs * 255 // max(width - 1, 1) + index * 8) % 256
        green = ys * 255 // max(height - 1, 1)
        blue = np.full_like(xs, 128)
        pixels = np.stack([red, green, blue], axis=-1).astype(np.uint8)
        frames.append(Image.fromarray(pixels))
    return frames


def top_level_boxes(mp4: bytes) -> list[bytes]:
    """The kinds of the file's top-level ISO BMFF boxes, in order."""
    kinds, offset = [], 0
    while offset < len(mp4):
        size, kind = struct.unpack(">I4s", mp4[offset : offset + 8])
        if size == 1:  # 64-bit size follows
            size = struct.unpack(">Q", mp4[offset + 8 : offset + 16])[0]
        assert size >= 8
        kinds.append(kind)
        offset += size
    assert offset == len(mp4)
    return kinds


def decode(mp4: bytes) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return stream, frames


@pytest.mark.parametrize(("count", "width", "height"), [(9, 64, 48), (1, 16, 16), (25, 96, 32)])
def test_decodes_as_h264_with_every_frame(count, width, height):
    frames = gradient_frames(count, width, height)
    mp4 = encode_mp4(frames, fps=8)
    stream, decoded = decode(mp4)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (width, height)
    assert stream.average_rate == 8
    assert len(decoded) == count
    for original, back in zip(frames, decoded, strict=True):
        error = np.abs(np.asarray(original).astype(int) - back.astype(int)).mean()
        assert error < 8, error  # lossy (and 4:2:0 halves the colour), but the same picture


def test_index_is_at_the_front_for_progressive_playback():
    kinds = top_level_boxes(encode_mp4(gradient_frames(5, 32, 32), fps=24))
    assert kinds[0] == b"ftyp"
    assert kinds.index(b"moov") < kinds.index(b"mdat")


def test_odd_sides_are_padded_not_cropped():
    assert even_size(33, 47) == (34, 48)
    assert even_size(32, 48) == (32, 48)
    frames = gradient_frames(3, 33, 47)
    stream, decoded = decode(encode_mp4(frames, fps=6))
    assert (stream.width, stream.height) == (34, 48)
    assert decoded[0].shape == (48, 34, 3)
    # the padded column repeats the last one
    np.testing.assert_allclose(decoded[0][:, 33], decoded[0][:, 32], atol=6)


def test_fractional_frame_rate_and_other_modes():
    frames = [frame.convert("RGBA") for frame in gradient_frames(4, 32, 32)]
    stream, decoded = decode(encode_mp4(frames, fps=30000 / 1001))
    assert stream.average_rate == Fraction(30000, 1001)
    assert len(decoded) == 4


@pytest.mark.parametrize(
    ("frames", "fps", "message"),
    [
        ([], 8, "at least one frame"),
        (gradient_frames(2, 16, 16), 0, "fps must be positive"),
        (gradient_frames(1, 16, 16) + gradient_frames(1, 32, 16), 8, "frame 1 is 32x16"),
    ],
)
def test_refuses_what_cannot_be_a_video(frames, fps, message):
    with pytest.raises(ValueError, match=message):
        encode_mp4(frames, fps)


def test_the_data_url_carries_the_mp4_bytes():
    import base64

    from functions.video import mp4_data_url

    mp4 = encode_mp4(gradient_frames(2, 16, 16), fps=8)
    url = mp4_data_url(mp4)
    assert url.startswith("data:video/mp4;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == mp4
