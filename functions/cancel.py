"""Stopping a generation whose caller has gone, between model steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class GenerationCancelled(Exception):
    """The caller asked to stop; raised between denoising (or decoding) steps."""


def stop_between_steps(should_stop: Callable[[], bool] | None) -> Callable[..., dict[str, Any]]:
    """A diffusers `callback_on_step_end` that raises GenerationCancelled once asked to stop."""

    def on_step_end(
        _pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        if should_stop is not None and should_stop():
            raise GenerationCancelled()
        return tensors

    return on_step_end
