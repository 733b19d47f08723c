"""Stopping a generation whose caller has gone: between denoising steps (either diffusers
callback), between the chunks of a decode, between the layers of one long forward pass, and at
the next token of a transformers `generate`. The one place every pipeline stops from.

The same step callbacks report progress: a `should_stop` that also has an `on_step(step,
total)` method (the adapter's StopFlag, for a job that shows its progress) hears of each
finished denoising step (or generated token, out of the most allowed), from the pipeline's own
loop, on the thread that runs it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import StoppingCriteriaList

StopCheck = Callable[[], bool]
# Told `step` of `total` denoising steps are done (1-based: the last call has step == total).
OnStep = Callable[[int, int], None]


class GenerationCancelled(Exception):
    """The caller asked to stop; raised between denoising (or decoding) steps."""


def raise_if_asked(should_stop: StopCheck | None) -> None:
    """Raise GenerationCancelled if the caller has asked to stop."""
    if should_stop is not None and should_stop():
        raise GenerationCancelled()


def report_step(should_stop: StopCheck | None, step: int, total: int) -> None:
    """Tell a `should_stop` that listens for progress that `step` of `total` are done."""
    on_step: OnStep | None = getattr(should_stop, "on_step", None)
    if on_step is not None and total > 0:
        on_step(min(step, total), total)


def stop_between_steps(should_stop: StopCheck | None) -> Callable[..., dict[str, Any]]:
    """A diffusers `callback_on_step_end` that reports the step and raises GenerationCancelled
    once asked to stop. The total is the pipeline's own count of the steps it runs (after
    img2img's strength has cut them)."""

    def on_step_end(
        pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        report_step(should_stop, step + 1, int(getattr(pipe, "num_timesteps", 0) or 0))
        raise_if_asked(should_stop)
        return tensors

    return on_step_end


def stop_between_legacy_steps(should_stop: StopCheck | None, total: int = 0) -> Callable[..., None]:
    """The same for a pipeline that still takes the older per-step `callback` (the x4 upscaler),
    which does not say its step count: the caller gives it as `total`."""

    def on_step(step: int, _timestep: Any, _latents: Any) -> None:
        report_step(should_stop, step + 1, total)
        raise_if_asked(should_stop)

    return on_step


def stop_when_asked(
    should_stop: StopCheck | None, *, prompt_tokens: int = 0, max_new_tokens: int = 0
) -> StoppingCriteriaList:
    """Criteria for transformers' `generate(stopping_criteria=...)`, met for every sequence once
    `should_stop()` is true (generation ends at its next token); empty when nothing can ask.

    Given `max_new_tokens` (and the `prompt_tokens` that `generate` sees ahead of them), each
    new token is reported as a step of that many: an upper bound, since EOS may end the answer
    sooner."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            report_step(should_stop, int(input_ids.shape[1]) - prompt_tokens, max_new_tokens)
            stop = bool(should_stop is not None and should_stop())
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([StopWhenAsked()] if should_stop else [])


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
