"""Decoding untrusted input images before any model sees them.

Every image a request uploads goes through `decode_image`: the declared size is read from the
header and checked against a pixel limit before any pixel is decoded (a small file can declare
a huge image), only common raster formats are tried (Pillow has plugins, such as EPS, that call
out to other programs), a truncated file is refused rather than padded with grey, the first
frame of an animation is taken, the EXIF orientation is applied and the pixels end as 8-bit RGB.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

# Pillow format ids tried, in this order (JPEG covers the multi-picture JPEGs phones write).
SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"

# How files of the supported formats start: PNG, JPEG, GIF, BMP, TIFF (both byte orders).
_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)

# Transparent pixels are shown over white, as an image viewer would show them.
BACKGROUND = (255, 255, 255)


class ImageInputError(ValueError):
    """An uploaded image cannot be used; the message says why, for the client."""


class ImageTooLargeError(ImageInputError):
    """An uploaded image has more pixels than a limit allows."""


def decode_image(
    data: bytes, *, max_pixels: int, limit_name: str = "max_input_pixels", field: str = "image"
) -> Image.Image:
    """The uploaded image as a loaded 8-bit RGB image, upright, first frame only.

    Raises ImageTooLargeError when the image declares more than `max_pixels` pixels (the
    message names `limit_name`, the setting that raises it) and ImageInputError for anything
    else that makes it unusable: empty, not an image, corrupt, truncated, unsupported mode.
    """
    # 1. Read the header only; Pillow decodes nothing before `load`.
    if not data:
        raise ImageInputError(f"The uploaded {field} file is empty.")
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_large(field, None, max_pixels, limit_name) from exc
    except UnidentifiedImageError as exc:
        if _has_known_signature(data):
            raise _corrupt(field) from exc
        raise ImageInputError(
            f"The uploaded {field} file is not an image this runner reads ({FORMAT_NAMES})."
        ) from exc
    except Exception as exc:
        # A corrupt header can fail in any of Pillow's format plugins, with any error type.
        raise _corrupt(field) from exc

    # 2. Refuse too many pixels before decoding them.
    width, height = image.size
    if width < 1 or height < 1:
        raise _corrupt(field)
    if width * height > max_pixels:
        raise _too_large(field, (width, height), max_pixels, limit_name)

    # 3. Decode the first frame; a truncated or corrupt stream fails here.
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise _too_large(field, None, max_pixels, limit_name) from exc
    except Exception as exc:
        raise _corrupt(field) from exc

    # 4. Stand it upright and make it 8-bit RGB.
    return _to_rgb(_upright(image), field)


def _too_large(
    field: str, size: tuple[int, int] | None, max_pixels: int, limit_name: str
) -> ImageTooLargeError:
    declared = f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels" if size else "too many pixels"
    return ImageTooLargeError(
        f"The uploaded {field} declares {declared}, over the limit {limit_name}={max_pixels}."
    )


def _has_known_signature(data: bytes) -> bool:
    """Whether the file starts as one of the supported formats does (so it is a broken one)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data.startswith(_SIGNATURES)


def _corrupt(field: str) -> ImageInputError:
    return ImageInputError(f"The uploaded {field} file is corrupt or truncated.")


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A broken EXIF block says nothing reliable about orientation; the pixels are fine.
        logger.info("ignoring an unreadable EXIF orientation")
        return image


def _to_rgb(image: Image.Image, field: str) -> Image.Image:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _to_8_bit(image)
    try:
        if image.has_transparency_data:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(
            f"The uploaded {field} uses the colour mode {image.mode}, which cannot be converted "
            "to RGB."
        ) from exc


def _to_8_bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit or float grey image to 8 bits (Pillow would clip it instead)."""
    values = np.asarray(image, dtype=np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    top = values.max(initial=0.0)
    if image.mode == "F" and top <= 1.0:
        values = values * 255.0
    elif top > 255.0:
        # 16-bit samples, whatever container mode Pillow chose for them.
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
