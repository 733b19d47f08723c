"""The adapter's side of uploaded images: decoded and checked in `prepare`, before any capacity.

The backend receives the image re-encoded as a plain PNG of what was checked (8-bit RGB,
upright, one frame), so whatever runs the model never sees the bytes the client sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapter.pipelines.base import in_memory_upload, off_loop, upload_bytes, with_upload_facts
from contract.errors import BadRequestError, LimitExceededError
from contract.schemas import RequestModel

if TYPE_CHECKING:
    from fastapi import UploadFile
    from PIL import Image

    from adapter.settings import Limits

# An image prepared here was checked against the limits already; this only keeps Pillow's
# own decompression-bomb guard in force when it is read again.
_PREPARED_MAX_PIXELS = 2**40


async def prepare_image(
    request: RequestModel,
    limits: Limits,
    *,
    field: str = "image",
    max_pixels: int | None = None,
    limit_name: str = "",
) -> tuple[RequestModel, tuple[int, int]]:
    """Decode the request's uploaded image defensively, off the event loop.

    Returns the request with the upload replaced by the checked image (as PNG), noting its size
    for pricing, and the image's (width, height). `max_pixels` is the pipeline's own limit
    named `limit_name`; the tighter of it and `max_input_pixels` is checked from the header
    before decoding.
    """
    upload: UploadFile = getattr(request, field)
    pixel_limit, name = limits.max_input_pixels, "max_input_pixels"
    if max_pixels is not None and max_pixels < pixel_limit:
        pixel_limit, name = max_pixels, limit_name
    png, size = await off_loop(_decode_and_encode, upload_bytes(upload), pixel_limit, name, field)
    checked = in_memory_upload(png, upload.filename, "image/png")
    prepared = request.model_copy(update={field: checked})
    width, height = size
    return with_upload_facts(prepared, input_width=width, input_height=height), size


def prepared_image(upload: UploadFile) -> Image.Image:
    """The image `prepare_image` put in a request, for the pipeline's `run`."""
    from functions.image_input import decode_image

    return decode_image(upload_bytes(upload), max_pixels=_PREPARED_MAX_PIXELS)


def _decode_and_encode(
    data: bytes, max_pixels: int, limit_name: str, field: str
) -> tuple[bytes, tuple[int, int]]:
    from functions.image_input import (
        ImageInputError,
        ImageTooLargeError,
        decode_image,
        encode_png,
    )

    try:
        image = decode_image(data, max_pixels=max_pixels, limit_name=limit_name, field=field)
    except ImageTooLargeError as exc:
        raise LimitExceededError(str(exc)) from exc
    except ImageInputError as exc:
        raise BadRequestError(str(exc)) from exc
    return encode_png(image), image.size
