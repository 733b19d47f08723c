"""The one call each pipeline's `load` makes to honour its model's optimization flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapter.settings import Settings
    from contract.aimodels import ServedModel


def optimize_pipeline(
    pipe: Any,
    model: ServedModel,
    settings: Settings,
    warmup: Callable[[], object] | None = None,
) -> list[str]:
    """Apply `model.flags` (SFAST, DEEPCACHE) to its loaded diffusers pipeline.

    `warmup` runs one generation at the pipeline's default request size; it is called after
    compiling when SFAST_WARMUP is on (the default). Returns what was applied.
    """
    from functions.speed.optimize import apply_optimization_flags

    return apply_optimization_flags(
        pipe,
        model.flags,
        model_id=model.model_id,
        pipeline=model.pipeline.value,
        compile_backend=settings.compile_backend,
        compile_mode=settings.compile_mode,
        compile_cache_dir=settings.compile_cache_dir,
        warmup=warmup,
    )
