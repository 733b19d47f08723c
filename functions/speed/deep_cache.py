"""DEEPCACHE: reuse a UNet's deep features between denoising steps (Ma et al., "DeepCache", 2023).

Adjacent denoising steps change the UNet's deep, low-resolution features very little. So, one
step in every `interval`, the whole UNet runs and the output of each deep block is kept; on the
other steps only the shallowest skip branch runs afresh: the input convolution, the last layer
of the last up block (fed the fresh input-convolution features) and the output convolution,
while every deeper block returns what it returned on the last full step. This is DeepCache's
uniform schedule with `cache_branch_id=0`, the setting Livepeer's runner uses with interval 3.

Built on diffusers' own hook registry (`diffusers.hooks`), which its maintained caches
(FasterCache, FirstBlockCache) use; diffusers 0.42 has no DeepCache for UNets, and the DeepCache
package (0.1.1, 2024) keeps state across calls (its first-step index is never reset, so a new
call may start on a skipped step and reuse another request's features).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from diffusers.hooks.hooks import HookRegistry, ModelHook

from contract.optimization_flags import DEEPCACHE_INTERVAL

HOOK_NAME = "modal_ai_runner_deep_cache"


class DeepCacheSchedule:
    """Which UNet calls of the current denoising run reuse cached features.

    A run starts when the scheduler's timesteps are set anew (every pipeline call does) or the
    input shape changes; its first call always runs the whole UNet, so no features ever carry
    over from one request to the next, even one that was cancelled midway.
    """

    def __init__(self, pipe: Any, interval: int) -> None:
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        self.interval = interval
        self.reusing = False
        self.full_calls = 0
        self.reused_calls = 0
        self._pipe = pipe
        self._timesteps: object = None
        self._shape: tuple[int, ...] = ()
        self._calls_in_run = 0

    def start_unet_call(self, sample: torch.Tensor) -> None:
        timesteps = getattr(self._pipe.scheduler, "timesteps", None)
        if timesteps is not self._timesteps or tuple(sample.shape) != self._shape:
            self._timesteps, self._shape, self._calls_in_run = timesteps, tuple(sample.shape), 0
        self.reusing = self._calls_in_run % self.interval != 0
        self._calls_in_run += 1
        if self.reusing:
            self.reused_calls += 1
        else:
            self.full_calls += 1


class _RunTracker(ModelHook):
    """On the UNet: decides, before each call, whether this step reuses deep features."""

    def __init__(self, schedule: DeepCacheSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def pre_forward(
        self, module: torch.nn.Module, *args: Any, **kwargs: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sample = args[0] if args else kwargs["sample"]
        self.schedule.start_unet_call(sample)
        return args, kwargs


class _ReuseOutput(ModelHook):
    """On a deep block: runs it on full steps (keeping the output), returns that otherwise."""

    def __init__(self, schedule: DeepCacheSchedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.output: Any = None

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.schedule.reusing and self.output is not None:
            return self.output
        original: Any = self.fn_ref.original_forward  # set when the hook was registered
        self.output = original(*args, **kwargs)
        return self.output


def _deep_modules(unet: Any) -> Iterator[torch.nn.Module]:
    """Everything but the shallowest skip branch: the modules whose outputs are reused."""
    yield from unet.down_blocks
    if unet.mid_block is not None:
        yield unet.mid_block
    yield from unet.up_blocks[:-1]
    last = unet.up_blocks[-1]
    # The last up block runs, but only its last resnet (and attention) compute afresh.
    yield from last.resnets[:-1]
    attentions = getattr(last, "attentions", None)
    if attentions is not None:
        yield from attentions[:-1]


def enable_deep_cache(pipe: Any, interval: int = DEEPCACHE_INTERVAL) -> DeepCacheSchedule:
    """Turn DeepCache on for a diffusers UNet pipeline; returns its schedule (with counters)."""
    unet = getattr(pipe, "unet", None)
    if unet is None or not all(
        hasattr(unet, name) for name in ("down_blocks", "mid_block", "up_blocks")
    ):
        raise ValueError(
            f"DEEPCACHE needs a UNet pipeline; {type(pipe).__name__} has no UNet with down, "
            "mid and up blocks"
        )
    schedule = DeepCacheSchedule(pipe, interval)
    HookRegistry.check_if_exists_or_initialize(unet).register_hook(_RunTracker(schedule), HOOK_NAME)
    for module in _deep_modules(unet):
        HookRegistry.check_if_exists_or_initialize(module).register_hook(
            _ReuseOutput(schedule), HOOK_NAME
        )
    return schedule


def disable_deep_cache(pipe: Any) -> None:
    """Remove DeepCache's hooks; the UNet computes every block on every step again."""
    HookRegistry.check_if_exists_or_initialize(pipe.unet).remove_hook(HOOK_NAME, recurse=True)
