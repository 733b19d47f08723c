"""Segment-anything-2 glue: SegmentAnything2Form -> functions.segment_anything_2 ->
MasksResponse (the runner's strings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapter.limits import the_limit
from adapter.pipelines.base import PipelineRunner, Prepared, StopCheck
from adapter.pipelines.image_input import checked_image, prepared_image
from contract.errors import LimitExceededError
from contract.pipelines import Pipeline
from contract.schemas import MasksResponse, RequestModel, SegmentAnything2Form
from contract.units import RequestFacts

if TYPE_CHECKING:
    import torch

    from adapter.settings import Limits, Settings
    from contract.aimodels import ServedModel
    from functions.segment_prompts import SegmentPrompts


def _prompts(request: SegmentAnything2Form, image_size: tuple[int, int]) -> SegmentPrompts:
    from functions.segment_anything_2 import check_inputs

    return check_inputs(
        point_coords=request.point_coords,
        point_labels=request.point_labels,
        box=request.box,
        mask_input=request.mask_input,
        normalize_coords=request.normalize_coords,
        image_size=image_size,
    )


class SegmentAnything2Runner(PipelineRunner):
    pipeline = Pipeline.SEGMENT_ANYTHING_2
    movable = True

    async def check(self, request: RequestModel, limits: Limits) -> Prepared:
        assert isinstance(request, SegmentAnything2Form)
        # The answer holds C x height x width numbers as text: the image's size bounds it.
        image, size = await checked_image(request.image, limits, limit="max_segment_input_pixels")
        prompts = _prompts(request, size)
        if prompts.num_points > limits.max_segment_points:
            raise LimitExceededError(
                f"point_coords holds {prompts.num_points} points, over the limit "
                f"{the_limit('max_segment_points', limits)}."
            )
        width, height = size
        return Prepared(
            request.model_copy(update={"image": image}),
            RequestFacts(input_width=width, input_height=height),
        )

    def build_demo(self, folder: Path) -> None:
        from functions.tiny.segment_anything import build_tiny_sam2

        build_tiny_sam2(folder)

    def load(
        self,
        model: ServedModel,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        settings: Settings,
    ) -> Any:
        from functions.segment_anything_2 import SegmentAnything2

        return SegmentAnything2.load(folder, device=device, dtype=dtype)

    def run(self, handle: Any, request: RequestModel, should_stop: StopCheck) -> BaseModel:
        from functions.segment_anything_2 import masks_response_strings

        assert isinstance(request, SegmentAnything2Form)
        image = prepared_image(request.image)
        result = handle.segment(
            image,
            _prompts(request, image.size),
            multimask_output=request.multimask_output,
            return_logits=request.return_logits,
            normalize_coords=request.normalize_coords,
            should_stop=should_stop,
        )
        masks, scores, logits = masks_response_strings(result)
        return MasksResponse(masks=masks, scores=scores, logits=logits)
