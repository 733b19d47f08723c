"""`/v1/images/generations` on the text-to-image models, through the runner service.

OpenAI's `prompt`, `n`, `size` and `response_format` map onto the runner's text-to-image
request; images come back as `b64_json` PNGs. `response_format: url` is refused: the runner's
answer holds the image itself, and this service has no store to keep a file behind a URL.
The runner's own knobs are accepted as extensions (`negative_prompt`, `seed`,
`num_inference_steps`, `guidance_scale`, and the workerbee reference's `hyperparameters.steps`).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from adapter.openai.chat import openai_errors
from adapter.openai.errors import from_validation_error, invalid
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import ImageResponse, TextToImageParams

if TYPE_CHECKING:
    from adapter.service import RunnerService

TEXT_TO_IMAGE_SPEC = PIPELINE_SPECS[Pipeline.TEXT_TO_IMAGE]
DEFAULT_SIZE = (1024, 1024)  # OpenAI's
SIZE = re.compile(r"^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$")
PNG_DATA_URL = "data:image/png;base64,"


class ImageGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str
    model: str = ""
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    # The runner's own, beyond OpenAI's.
    negative_prompt: str = ""
    seed: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    hyperparameters: dict[str, Any] | None = None


def parse_image_request(body: Any) -> ImageGenerationRequest:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    try:
        request = ImageGenerationRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    if request.response_format not in (None, "b64_json"):
        raise invalid(
            f"response_format {request.response_format!r} is not supported: images are returned "
            "as b64_json (this service keeps no files to link to).",
            "response_format",
        )
    if request.output_format not in (None, "png"):
        raise invalid("Only PNG images are generated; send output_format 'png'.", "output_format")
    return request


def parse_size(size: str | None) -> tuple[int, int]:
    """(width, height) of OpenAI's 'WIDTHxHEIGHT'; 'auto' or none is 1024x1024."""
    if size is None or size.strip().lower() == "auto":
        return DEFAULT_SIZE
    match = SIZE.match(size)
    if match is None:
        raise invalid(f"size must be 'WIDTHxHEIGHT' (such as '1024x1024'), got {size!r}.", "size")
    return int(match.group(1)), int(match.group(2))


def to_text_to_image(request: ImageGenerationRequest) -> TextToImageParams:
    width, height = parse_size(request.size)
    fields: dict[str, Any] = {
        "prompt": request.prompt,
        "model_id": request.model,
        "width": width,
        "height": height,
        "num_images_per_prompt": 1 if request.n is None else request.n,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
    }
    steps = request.num_inference_steps
    if steps is None and request.hyperparameters:
        steps = request.hyperparameters.get("steps")
    if steps is not None:
        fields["num_inference_steps"] = steps
    if request.guidance_scale is not None:
        fields["guidance_scale"] = request.guidance_scale
    try:
        return TextToImageParams(**fields)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def image_json(url: str) -> dict[str, Any]:
    """OpenAI's image object for a runner image: its base64 PNG when the runner answered a
    PNG data URL (as it does), else the URL it answered."""
    if url.startswith(PNG_DATA_URL):
        return {"b64_json": url[len(PNG_DATA_URL) :], "revised_prompt": None}
    return {"url": url, "revised_prompt": None}


async def generate_images(
    service: RunnerService, request: ImageGenerationRequest
) -> dict[str, Any]:
    """OpenAI's images response for `request` (every image as b64_json)."""
    params = to_text_to_image(request)
    with openai_errors(model_named=bool(request.model)):
        response = await service.handle(TEXT_TO_IMAGE_SPEC, params)
    assert isinstance(response, ImageResponse)
    return {
        "created": int(time.time()),
        "data": [image_json(image.url) for image in response.images],
        "output_format": "png",
        "size": f"{params.width}x{params.height}",
    }
