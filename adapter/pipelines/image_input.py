"""The adapter's side of uploaded images: decoded and checked in `prepare`, before any capacity.

The backend receives the image re-encoded as a plain PNG of what was checked (8-bit RGB,
upright, one frame), so whatever runs the model never sees the bytes the client sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapter.limits import limit_name
from adapter.pipelines.base import off_loop
from contract.errors import BadRequestError, LimitExceededError
from contract.schemas import Upload

if TYPE_CHECKING:
    from PIL import Image

    from adapter.settings import Limits

# An image prepared here was checked against the limits already; this only keeps Pillow's
# own decompression-bomb guard in force when it is read again.
_PREPARED_MAX_PIXELS = 2**40


async def checked_image(
    upload: Upload,
    limits: Limits,
    *,
    field: str = "image",
    limit: str = "max_input_pixels",
) -> tuple[Upload, tuple[int, int]]:
    """Decode an uploaded image defensively, off the event loop.

    Returns the image as checked (a PNG) and its (width, height). The tighter of the limit
    `limit` (a field of `Limits`: the pipeline's own bound) and `max_input_pixels` is checked
    from the header, before decoding; the refusal names its environment variable.
    """
    if getattr(limits, limit) >= limits.max_input_pixels:
        limit = "max_input_pixels"
    png, size = await off_loop(
        _decode_and_encode, upload.data, getattr(limits, limit), limit_name(limit), field
    )
    return Upload(png, upload.filename, "image/png"), size


def prepared_image(upload: Upload) -> Image.Image:
    """The image `checked_image` put in a request, for the pipeline's `run`."""
    from functions.image_input import decode_image

    return decode_image(upload.data, max_pixels=_PREPARED_MAX_PIXELS)


def _decode_and_encode(
    data: bytes, max_pixels: int, limit_name: str, field: str
) -> tuple[bytes, tuple[int, int]]:
    from functions.image_input import (
        ImageInputError,
        ImageTooLargeError,
        decode_image,
    )
    from functions.media import image_png

    try:
        image = decode_image(data, max_pixels=max_pixels, limit_name=limit_name, field=field)
    except ImageTooLargeError as exc:
        raise LimitExceededError(str(exc)) from exc
    except ImageInputError as exc:
        raise BadRequestError(str(exc)) from exc
    return image_png(image), image.size
