"""Apply an entry's optimization flags to a loaded diffusers pipeline (any of the four).

Each pipeline's loader calls `apply_optimization_flags` once, after `from_pretrained` and
`.to(device)`, with a `warmup` that runs one small generation through its own code path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract.optimization_flags import DEEPCACHE_INTERVAL, OptimizationFlags

logger = logging.getLogger(__name__)


def apply_optimization_flags(
    pipe: Any,
    flags: OptimizationFlags,
    *,
    model_id: str,
    pipeline: str,
    compile_backend: str = "inductor",
    compile_mode: str = "default",
    compile_cache_dir: Path | None = None,
    warmup: Callable[[], object] | None = None,
) -> list[str]:
    """Apply SFAST (with its warm-up) or DEEPCACHE to `pipe` in place; returns what was done.

    `flags` are parsed once, with the configuration (`ServedModel.flags`); BFLOAT16 is not
    applied here (it chooses the dtype the weights are loaded in). Raises ValueError when the
    pipeline has nothing a flag can work on (e.g. DEEPCACHE on a transformer model).
    """
    done: list[str] = []
    if flags.sfast:
        from functions.speed.compile import compile_pipeline
        from functions.speed.compile_cache import use_compile_cache

        if compile_cache_dir is not None:
            use_compile_cache(compile_cache_dir)
        done += compile_pipeline(pipe, compile_backend, compile_mode)
        if flags.sfast_warmup and warmup is not None:
            # The first call of a shape compiles: pay for it now, not in a client's request.
            warmup()
            done.append("warmed up")
    if flags.deepcache:
        from functions.speed.deep_cache import enable_deep_cache

        enable_deep_cache(pipe, DEEPCACHE_INTERVAL)
        done.append(f"DeepCache (interval {DEEPCACHE_INTERVAL})")
    if done:
        logger.info("%s %s: %s", pipeline, model_id, ", ".join(done))
    return done
