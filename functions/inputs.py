"""What the pipelines' `check_inputs` share: the checks of arguments common to several of them.

Plain Python, importable without torch (as every pipeline module's `check_inputs` is), so the
adapter checks a request's arguments before any model is involved, wherever the model runs.
Each check raises `contract.errors.InputError` with a message that names the field; sizes are
printed as width x height.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from contract.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])

# The largest seed a generator takes (torch's manual_seed accepts a signed 64-bit integer).
MAX_SEED = 2**63 - 1
# The smallest width and height of any image a pipeline takes or makes: a Stable Diffusion UNet
# needs a latent of at least 2x2 (the demo models' group norms fail on 1x1, 8 pixels), and SVD's
# image encoder cannot resize a side of 1 pixel.
MIN_IMAGE_SIDE = 16
# Stable Diffusion's VAE makes 8 pixels of each latent one.
SIDE_MULTIPLE = 8


def check_text(field: str, text: str) -> None:
    """Refuse text no tokenizer can take: one that is not encodable as UTF-8.

    A JSON string can carry a lone UTF-16 surrogate (`"\\ud800"`); Python keeps it, and the
    tokenizers then fail with a TypeError deep inside the model's call.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{field} is not valid text: it holds a lone UTF-16 surrogate "
            f"(U+{ord(text[exc.start]):04X}) at character {exc.start}."
        ) from None


def check_seed(seed: int | None, top: int = MAX_SEED) -> None:
    if seed is not None and not 0 <= seed <= top:
        raise InputError(f"seed must be between 0 and {top}, got {seed}.")


def check_image_size(size: tuple[int, int], field: str = "image") -> None:
    """An uploaded image's (width, height) against the smallest the pipelines take."""
    width, height = size
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise InputError(
            f"The {field} must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels, "
            f"got {width}x{height}."
        )


def check_output_size(width: int, height: int) -> None:
    """The width and height a request asks of a generated image or video."""
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise InputError(
            f"width and height must be at least {MIN_IMAGE_SIDE}, got {width}x{height}."
        )
    if width % SIDE_MULTIPLE or height % SIDE_MULTIPLE:
        raise InputError(
            f"width and height must be multiples of {SIDE_MULTIPLE}, got {width}x{height}."
        )


def inference_mode(function: F) -> F:
    """`@torch.inference_mode()` that imports torch when `function` is called, not defined:
    the pipeline modules stay importable without torch, for their `check_inputs`."""

    @functools.wraps(function)
    def without_autograd(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return function(*args, **kwargs)

    return cast(F, without_autograd)
