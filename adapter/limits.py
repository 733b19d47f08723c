"""Request checks that bound cost, common to every backend."""

from __future__ import annotations

from adapter.settings import Limits
from contract.errors import BadRequestError, LimitExceededError
from contract.schemas import RequestModel, TextToImageParams, TextToSpeechParams


def check_request(request: RequestModel, limits: Limits) -> None:
    """Refuse a request that breaks a cost limit, naming the limit (400)."""
    # The runner refuses these two empty inputs with 400 before any model work.
    if isinstance(request, TextToImageParams) and not request.prompt.strip():
        raise BadRequestError("Prompt must be provided.")
    if isinstance(request, TextToSpeechParams) and not request.text.strip():
        raise BadRequestError("Text input must be provided.")
    if getattr(request, "loras", ""):
        raise BadRequestError("LoRAs are not supported by this runner; send an empty 'loras'.")

    height, width = getattr(request, "height", None), getattr(request, "width", None)
    if height is not None and width is not None:
        if height < 1 or width < 1:
            raise BadRequestError(f"height and width must be positive, got {height}x{width}.")
        if height * width > limits.max_pixels_per_image:
            raise LimitExceededError(
                f"{width}x{height} is {width * height} pixels, over the limit "
                f"max_pixels_per_image={limits.max_pixels_per_image}."
            )
    images = getattr(request, "num_images_per_prompt", None)
    if images is not None:
        if images < 1:
            raise BadRequestError(f"num_images_per_prompt must be at least 1, got {images}.")
        if images > limits.max_images_per_request:
            raise LimitExceededError(
                f"num_images_per_prompt={images} is over the limit "
                f"max_images_per_request={limits.max_images_per_request}."
            )
    steps = getattr(request, "num_inference_steps", None)
    if steps is not None and steps > limits.max_inference_steps:
        raise LimitExceededError(
            f"num_inference_steps={steps} is over the limit "
            f"max_inference_steps={limits.max_inference_steps}."
        )
