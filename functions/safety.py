"""The optional NSFW flag, from a Stable Diffusion safety checker (CompVis style).

As in Livepeer's runner, the checker only sets the `nsfw` flag of each image; it never blurs or
blanks the image. Without a configured checker every image reports `nsfw: false`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


class SafetyChecker:
    def __init__(self, model: torch.nn.Module, processor: Any, device: torch.device) -> None:
        self.model = model
        self.processor = processor
        self.device = device

    @classmethod
    def load(cls, folder: Path, device: torch.device) -> SafetyChecker:
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )
        from transformers import CLIPImageProcessor

        # float32 like the runner's checker: it is small and its thresholds are tuned in fp32.
        model: torch.nn.Module = StableDiffusionSafetyChecker.from_pretrained(
            folder, dtype=torch.float32
        )
        processor = CLIPImageProcessor.from_pretrained(folder)
        return cls(model.to(device).eval(), processor, device)

    def to(self, device: torch.device) -> SafetyChecker:
        self.model.to(device)
        self.device = device
        return self

    @torch.no_grad()
    def flags(self, images: list[Image.Image]) -> list[bool]:
        """One flag per image: True where the checker finds an NSFW concept."""
        pixel_values = self.processor(images, return_tensors="pt").pixel_values
        arrays = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images])
        _, has_nsfw = self.model(images=arrays, clip_input=pixel_values.to(self.device))
        return [bool(flag) for flag in has_nsfw]
