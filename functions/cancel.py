"""Stopping a generation whose caller has gone: between denoising steps, between the chunks of
a decode, and between the layers of one long forward pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

StopCheck = Callable[[], bool]


class GenerationCancelled(Exception):
    """The caller asked to stop; raised between denoising (or decoding) steps."""


def raise_if_asked(should_stop: StopCheck | None) -> None:
    """Raise GenerationCancelled if the caller has asked to stop."""
    if should_stop is not None and should_stop():
        raise GenerationCancelled()


def stop_between_steps(should_stop: StopCheck | None) -> Callable[..., dict[str, Any]]:
    """A diffusers `callback_on_step_end` that raises GenerationCancelled once asked to stop."""

    def on_step_end(
        _pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        raise_if_asked(should_stop)
        return tensors

    return on_step_end


@contextmanager
def stop_inside(module: torch.nn.Module, should_stop: StopCheck | None) -> Iterator[None]:
    """Within the block, check `should_stop` before each layer of `module` runs.

    A forward pass that is long on its own (a VAE decoding a whole video on a CPU) then stops
    within one layer. On a GPU the check runs when the layer's work is queued, ahead of the
    device, so there the caller checks again after waiting for a chunk's result. A compiled
    module is left alone: a hook inside its graph would split the graph at every layer.
    """
    compiled = getattr(module, "_compiled_call_impl", None) is not None or hasattr(
        module, "_orig_mod"
    )
    if should_stop is None or compiled:
        yield
        return

    def before_layer(_layer: torch.nn.Module, _args: Any) -> None:
        raise_if_asked(should_stop)

    hooks = [layer.register_forward_pre_hook(before_layer) for layer in module.modules()]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
