"""A client that leaves an image-to-video request: the next request must not wait behind it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.livepeer_multipart import png_bytes, post_image

# A quick video, and a long one whose time goes mostly to the VAE decode (on a CPU, one step
# at this size is a few hundred ms, the decode of its 3 frames several seconds).
QUICK = {"height": 48, "width": 64, "num_inference_steps": 2, "seed": 1}
LONG = {"height": 256, "width": 448, "num_inference_steps": 1, "seed": 2}


def _seconds(client: httpx.Client, **fields: Any) -> float:
    start = time.monotonic()
    response = post_image(client, "/image-to-video", png_bytes(), **fields)
    assert response.status_code == 200, response.text
    return time.monotonic() - start


def assert_an_abandoned_video_frees_the_model(base_url: str, **fields: Any) -> None:
    """Time a quick video alone, then right after a client left a long one a third through.

    A model that went on with the abandoned video (its decode) makes the quick one wait about
    two thirds of the long one; one that stopped at its next denoising step, decode chunk or
    decoder layer makes it wait a fraction of that. The bound is generous (a quarter of the
    long video on top of the quick one's own time, twice over), not a tight timing.
    """
    with httpx.Client(base_url=base_url, timeout=300) as client:
        quick = _seconds(client, **QUICK, **fields)
        long = _seconds(client, **LONG, **fields)
        # A client gives up a third into the long video (decoding) and closes its connection.
        leaving = httpx.Client(base_url=base_url, timeout=httpx.Timeout(300, read=long / 3))
        with leaving, pytest.raises(httpx.ReadTimeout):
            post_image(leaving, "/image-to-video", png_bytes(), **LONG, **fields)
        behind = _seconds(client, **QUICK, **fields)
    assert behind < 2 * quick + long / 4, (
        f"the quick video took {behind:.2f} s after one was abandoned, {quick:.2f} s alone "
        f"(the abandoned one takes {long:.2f} s)"
    )
