"""Which device and dtype a pipeline runs on."""

from __future__ import annotations

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was asked for but CUDA is not available")
    return device


def pick_dtype(device: torch.device, preference: str = "auto") -> torch.dtype:
    """`auto` is float16 on CUDA (as Livepeer's runner loads) and float32 on the CPU."""
    if preference == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[
        preference
    ]
