"""The `optimization_flags` of an aiModels.json entry: which we honour, and their checks.

go-livepeer passes these to the containers it manages as environment variables (`SFAST=true`)
and ignores them for external containers. We honour them: this module reads and checks them
(torch-free, so the configuration is checked at start), `functions.speed.optimize` applies them to a
loaded pipeline.

Values are booleans: a JSON `true`/`false`, or the strings "true"/"false" that go-livepeer makes
of them (any case). Anything else is refused rather than read as false, as the runner would.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from contract.errors import OptimizationFlagError
from contract.model_families import is_few_step_distilled
from contract.pipelines import PIPELINE_SPECS

# The pipelines Livepeer's runner compiles with stable-fast and caches with DeepCache: the
# diffusers UNet pipelines.
DIFFUSION_PIPELINES = frozenset(
    spec.pipeline.value for spec in PIPELINE_SPECS.values() if spec.diffusion
)

# Flag name -> (pipelines it applies to, or None for every pipeline; what it does here).
SUPPORTED_FLAGS: dict[str, tuple[frozenset[str] | None, str]] = {
    "SFAST": (
        DIFFUSION_PIPELINES,
        "compile the denoiser and the VAE decoder with torch.compile (channels-last, fused "
        "QKV projections)",
    ),
    "TORCH_COMPILE": (DIFFUSION_PIPELINES, "the runner's other compile switch; same as SFAST"),
    "SFAST_WARMUP": (
        None,
        "with SFAST, generate once at load so no request waits for compilation (default "
        "true); no effect without SFAST",
    ),
    "DEEPCACHE": (
        DIFFUSION_PIPELINES,
        "reuse the UNet's deep features on 2 of every 3 denoising steps (DeepCache)",
    ),
    "BFLOAT16": (None, "load the weights in bfloat16 (as runner.torch_dtype: bfloat16)"),
}

# Switches Livepeer's runner reads that have no effect here; accepted with a warning so that an
# operator's existing file still starts.
IGNORED_RUNNER_FLAGS = frozenset(
    {
        "SAFETY_CHECKER_DEVICE",
        "USE_LOW_VRAM",
        "USE_8BIT",
        "MAX_NUM_BATCHED_TOKENS",
        "MAX_NUM_SEQS",
        "MAX_MODEL_LEN",
        "GPU_MEMORY_UTILIZATION",
        "TENSOR_PARALLEL_SIZE",
        "PIPELINE_PARALLEL_SIZE",
        "BACKEND",
    }
)

# torch.compile's modes (inductor's), for SFAST (ADAPTER_COMPILE_MODE) and the fast path.
CompileMode = Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)

DEEPCACHE_INTERVAL = 3  # as the runner sets it: full UNet on one step of every three


@dataclass(frozen=True)
class OptimizationFlags:
    """What an entry's flags ask for, after the checks."""

    sfast: bool = False
    sfast_warmup: bool = True
    deepcache: bool = False
    bfloat16: bool = False
    ignored: tuple[str, ...] = ()


def flag_value(name: str, value: object) -> bool:
    """A flag's boolean value from a JSON bool or the string go-livepeer makes of one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OptimizationFlagError(
        name, f"expected true or false (a JSON boolean or the string), got {value!r}"
    )


def _unknown_flag(name: str) -> OptimizationFlagError:
    known = sorted(SUPPORTED_FLAGS)
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return OptimizationFlagError(
        name,
        f"unknown optimization flag.{hint} Supported: {', '.join(known)}; accepted with no "
        f"effect: {', '.join(sorted(IGNORED_RUNNER_FLAGS))}",
    )


def parse_optimization_flags(
    raw: Mapping[str, object], *, pipeline: str, model_id: str
) -> OptimizationFlags:
    """Check an entry's flags for `pipeline` and `model_id`; raise OptimizationFlagError."""
    # 1. Names and values.
    values: dict[str, bool] = {}
    ignored = []
    for name, value in raw.items():
        if name in IGNORED_RUNNER_FLAGS:
            ignored.append(name)
        elif name in SUPPORTED_FLAGS:
            values[name] = flag_value(name, value)
        else:
            raise _unknown_flag(name)

    # 2. Each flag that is on must apply to this pipeline (an explicit false is harmless).
    for name, on in values.items():
        pipelines, _ = SUPPORTED_FLAGS[name]
        if on and pipelines is not None and pipeline not in pipelines:
            raise OptimizationFlagError(
                name,
                f"applies to {', '.join(sorted(pipelines))} only, not to {pipeline}",
            )

    # 3. Combinations.
    sfast = values.get("SFAST", False) or values.get("TORCH_COMPILE", False)
    deepcache = values.get("DEEPCACHE", False)
    if sfast and deepcache:
        raise OptimizationFlagError(
            "DEEPCACHE",
            "SFAST (or TORCH_COMPILE) and DEEPCACHE are mutually exclusive: the compiled UNet "
            "would have to be traced around DeepCache's per-step skipping; turn one off",
        )
    if deepcache and is_few_step_distilled(model_id):
        raise OptimizationFlagError(
            "DEEPCACHE",
            f"{model_id!r} is a Turbo/Lightning model (its id matches [-_]turbo or "
            "[-_]lightning), distilled for 1 to 8 steps: DeepCache would run 2 of every 3 of "
            "those few steps on stale deep features (and a 1-step model gains nothing); "
            "remove DEEPCACHE from this entry",
        )
    return OptimizationFlags(
        sfast=sfast,
        sfast_warmup=values.get("SFAST_WARMUP", True),
        deepcache=deepcache,
        bfloat16=values.get("BFLOAT16", False),
        ignored=tuple(sorted(ignored)),
    )
