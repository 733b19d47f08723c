"""Service policy, common to every backend: the cost limits an operator sets (`ADAPTER_MAX_*`)
and the request fields this runner does not serve.

Whether a pipeline can take an argument at all is its `functions/` module's `check_inputs`,
called by the glue's `prepare`; each argument is checked in one of the two places, never both.
A limit's message names the environment variable that raises it, and prints a size as
width x height.
"""

from __future__ import annotations

from adapter.settings import Limits
from contract.errors import BadRequestError, LimitExceededError
from contract.schemas import LLMRequest, RequestModel, TextToSpeechParams


def limit_name(field: str) -> str:
    """The environment variable that sets the limit `field` of `Limits` (ADAPTER_MAX_...)."""
    if field not in Limits.model_fields:
        raise KeyError(f"{field} is not a limit")
    return f"{Limits.model_config.get('env_prefix', '')}{field}".upper()


def the_limit(field: str, limits: Limits) -> str:
    """A limit as a message names it: its environment variable and its value."""
    value = getattr(limits, field)
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{limit_name(field)}={shown}"


def check_request(request: RequestModel, limits: Limits) -> None:
    """Refuse a request that breaks a cost limit (400) or asks for what is not served here."""
    # Characters as go-livepeer counts them (code points); an empty text is check_inputs'.
    if isinstance(request, TextToSpeechParams) and len(request.text) > limits.max_tts_chars:
        raise LimitExceededError(
            f"The text is {len(request.text)} characters, over the limit "
            f"{the_limit('max_tts_chars', limits)}."
        )
    if getattr(request, "loras", ""):
        raise BadRequestError("LoRAs are not supported by this runner; send an empty 'loras'.")

    height, width = getattr(request, "height", None), getattr(request, "width", None)
    # Sizes that are not positive are the pipeline's `check_inputs` to refuse.
    if height is not None and width is not None and height > 0 and width > 0:
        if width * height > limits.max_pixels_per_image:
            raise LimitExceededError(
                f"{width}x{height} is {width * height} pixels, over the limit "
                f"{the_limit('max_pixels_per_image', limits)}."
            )
    images = getattr(request, "num_images_per_prompt", None)
    if images is not None and images > limits.max_images_per_request:
        raise LimitExceededError(
            f"num_images_per_prompt={images} is over the limit "
            f"{the_limit('max_images_per_request', limits)}."
        )
    steps = getattr(request, "num_inference_steps", None)
    if steps is not None and steps > limits.max_inference_steps:
        raise LimitExceededError(
            f"num_inference_steps={steps} is over the limit "
            f"{the_limit('max_inference_steps', limits)}."
        )
    frames = getattr(request, "num_frames", None)
    if frames is not None and frames > limits.max_video_frames:
        raise LimitExceededError(
            f"num_frames={frames} is over the limit {the_limit('max_video_frames', limits)}."
        )
    if isinstance(request, LLMRequest) and request.max_tokens > limits.max_llm_tokens:
        raise LimitExceededError(
            f"max_tokens={request.max_tokens} is over the limit "
            f"{the_limit('max_llm_tokens', limits)}."
        )
