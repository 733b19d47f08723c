"""Segment Anything 2 on one image with transformers' `Sam2Model`, as Livepeer's runner serves it.

The runner uses the `sam2` package's `SAM2ImagePredictor`; this follows its steps with the
transformers classes:

1. The image is resized to the model's square input (1024x1024 for every SAM 2 checkpoint),
   bilinear with antialiasing, scaled to [0, 1] and normalized with the preprocessor config's
   mean and std (ImageNet's by default).
2. Points and box corners are moved into that square: pixel coordinates (`normalize_coords`
   true) are divided by the image's width and height first, fractions (false) are not.
3. One forward pass gives low-resolution mask logits (256x256) and a predicted IoU per mask:
   three masks with `multimask_output`, else one.
4. The masks are the logits upsampled bilinearly to the image's size, thresholded at 0 unless
   `return_logits`; the low-resolution logits come back clamped to [-32, 32], as the predictor
   returns them.

The answer's strings are the runner's (`masks_response_strings`): masks, scores and logits in
descending order of score, each `str()` of the float32 array's `tolist()`.

transformers' `Sam2Processor` needs torchvision, which this project does not install (its
PyPI wheels do not load beside the CPU torch used here); step 1 reads the same
`preprocessor_config.json` fields that processor would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contract.errors import InputError
from functions.cancel import raise_if_asked, stop_inside
from functions.inputs import check_image_size, inference_mode
from functions.segment_prompts import SegmentPrompts, parse_prompts

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MASK_THRESHOLD = 0.0
LOGIT_CLAMP = 32.0


def check_inputs(
    *,
    point_coords: str | None,
    point_labels: str | None,
    box: str | None,
    mask_input: str | None,
    normalize_coords: bool,
    image_size: tuple[int, int],
) -> SegmentPrompts:
    """Refuse arguments `SegmentAnything2.segment` cannot take (InputError, naming the field),
    and return the prompts read from them. `image_size` is the input image's (width, height).

    Plain Python: the adapter calls it before a request takes any capacity. Only the size of
    `mask_input`, which depends on the model, is checked by `segment`.
    """
    check_image_size(image_size)
    return parse_prompts(
        point_coords=point_coords,
        point_labels=point_labels,
        box=box,
        mask_input=mask_input,
        normalize_coords=normalize_coords,
        image_size=image_size,
    )


@dataclass(frozen=True)
class Segmentation:
    """SAM 2's answer for one image, in the model's order (C masks: 3, or 1)."""

    masks: np.ndarray  # C x H x W float32: logits, or 0.0/1.0
    scores: np.ndarray  # C float32: predicted IoU of each mask
    logits: np.ndarray  # C x h x w float32: low-resolution logits, clamped to [-32, 32]


def masks_response_strings(result: Segmentation) -> tuple[str, str, str]:
    """`masks`, `scores` and `logits` as the runner's route writes them: sorted by descending
    score (`np.argsort(scores)[::-1]`), each `str(array.tolist())`."""
    import numpy as np

    order = np.argsort(result.scores)[::-1]
    return (
        str(result.masks[order].tolist()),
        str(result.scores[order].tolist()),
        str(result.logits[order].tolist()),
    )


def _preprocessor_config(folder: Path) -> dict[str, Any]:
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    return config if isinstance(config, dict) else {}


def _check_is_sam2(folder: Path) -> None:
    config_path = folder / "config.json"
    model_type = None
    if config_path.is_file():
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    if model_type != "sam2":
        found = sorted(p.name for p in folder.iterdir())[:8]
        raise ValueError(
            f"{folder} holds no transformers SAM 2 model (config.json with model_type 'sam2'; "
            f"found {found}). The sam2 package's checkpoints (sam2_hiera_*.pt) are not loaded "
            "here: serve a transformers-format SAM 2 repo (config.json and model.safetensors) "
            "or convert the checkpoint with transformers' convert_sam2_to_hf.py and set "
            "runner.model_path to the result."
        )


class SegmentAnything2:
    def __init__(
        self,
        model: Any,
        *,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        rescale_factor: float = 1 / 255,
    ) -> None:
        self.model = model
        self.mean, self.std, self.rescale_factor = mean, std, rescale_factor
        encoder = model.prompt_encoder
        self.input_size: int = int(encoder.input_image_size)
        self.mask_input_size: tuple[int, int] = tuple(encoder.mask_input_size)

    @classmethod
    def load(cls, folder: Path, *, device: torch.device, dtype: torch.dtype) -> SegmentAnything2:
        from transformers import Sam2Model

        _check_is_sam2(folder)
        model: torch.nn.Module = Sam2Model.from_pretrained(folder, dtype=dtype)
        model = model.to(device).eval()
        config = _preprocessor_config(folder)
        return cls(
            model,
            mean=tuple(config.get("image_mean", IMAGENET_MEAN)),
            std=tuple(config.get("image_std", IMAGENET_STD)),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
        )

    def to(self, device: torch.device) -> SegmentAnything2:
        self.model.to(device)
        return self

    def _pixel_values(self, image: Image.Image) -> torch.Tensor:
        import numpy as np
        import torch
        import torch.nn.functional as F

        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy())
        pixels = pixels.permute(2, 0, 1)[None] * self.rescale_factor
        side = self.input_size
        pixels = F.interpolate(
            pixels, size=(side, side), mode="bilinear", align_corners=False, antialias=True
        )
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def _to_input_frame(
        self, coords: list[list[float]], size: tuple[int, int], normalized: bool
    ) -> list[list[float]]:
        """Coordinates in the model's square input: pixels (normalized) or fractions."""
        width, height = size if normalized else (1, 1)
        return [[x / width * self.input_size, y / height * self.input_size] for x, y in coords]

    @inference_mode
    def segment(
        self,
        image: Image.Image,
        prompts: SegmentPrompts,
        *,
        multimask_output: bool = True,
        return_logits: bool = True,
        normalize_coords: bool = True,
        should_stop: Callable[[], bool] | None = None,
    ) -> Segmentation:
        """The masks of `image` for prompts `check_inputs` accepted."""
        import torch
        import torch.nn.functional as F

        size = image.size
        if prompts.mask_input is not None:
            mask_size = (len(prompts.mask_input), len(prompts.mask_input[0]))
            if mask_size != self.mask_input_size:
                expected = "x".join(map(str, self.mask_input_size))
                raise InputError(
                    f"mask_input must be 1x{expected} for this model (a previous answer's "
                    f"logits), got 1x{mask_size[0]}x{mask_size[1]}."
                )
        device = self.model.device
        dtype = self.model.dtype
        inputs: dict[str, Any] = {"pixel_values": self._pixel_values(image).to(device, dtype)}
        if prompts.point_coords is not None and prompts.point_labels is not None:
            points = self._to_input_frame(
                [list(p) for p in prompts.point_coords], size, normalize_coords
            )
            inputs["input_points"] = torch.tensor([[points]], dtype=dtype, device=device)
            inputs["input_labels"] = torch.tensor(
                [[list(prompts.point_labels)]], dtype=torch.int64, device=device
            )
        if prompts.box is not None:
            (x1, y1), (x2, y2) = self._to_input_frame(
                [list(prompts.box[:2]), list(prompts.box[2:])], size, normalize_coords
            )
            inputs["input_boxes"] = torch.tensor([[[x1, y1, x2, y2]]], dtype=dtype, device=device)
        if prompts.mask_input is not None:
            inputs["input_masks"] = torch.tensor(
                [[[list(row) for row in prompts.mask_input]]], dtype=dtype, device=device
            )

        raise_if_asked(should_stop)
        with stop_inside(self.model, should_stop):
            output = self.model(**inputs, multimask_output=multimask_output)
        raise_if_asked(should_stop)

        low_res = output.pred_masks[0, 0].float()  # C x h x w
        masks = F.interpolate(
            low_res[None], size=(size[1], size[0]), mode="bilinear", align_corners=False
        )[0]
        if not return_logits:
            masks = (masks > MASK_THRESHOLD).float()
        return Segmentation(
            masks=masks.cpu().numpy(),
            scores=output.iou_scores[0, 0].float().cpu().numpy(),
            logits=low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP).cpu().numpy(),
        )
