"""Media encodings of the runner contract."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_data_url(image: Image.Image) -> str:
    """A `data:image/png;base64,...` URL, the only image form the runner returns."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
