"""Ending a transformers `generate` call whose caller has gone, at its next token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList


class StopWhenAsked(StoppingCriteria):
    """A stopping criterion that is met for every sequence once `should_stop()` is true."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        stop = bool(self.should_stop())
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def stop_when_asked(should_stop: Callable[[], bool] | None) -> StoppingCriteriaList:
    """Criteria for `generate(stopping_criteria=...)`; empty when nothing can ask to stop."""
    return StoppingCriteriaList([StopWhenAsked(should_stop)] if should_stop else [])
