"""What `modal deploy` tells the operator before deploying: the loud warnings of a deploy that
will cost money or serve something other than what they think. Plain text from the plan;
modal_app.py prints it (on the deploying machine only, never in a container).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from adapter.settings import Settings
from contract.pipelines import Pipeline
from modal_deploy.plan import AppPlan
from modal_deploy.settings import SAMPLE_MODELS_FILE, sam2_web_memory_mb
from modal_deploy.weights import unpinned_repos
from pricing.gpus import UnknownGpuError, gpu_price

MONTH_S = 30 * 24 * 3600
RULE = "!" * 78


def warm_cost(plan: AppPlan) -> list[str]:
    """One line per class kept warm: its GPUs and what they cost a month if kept so."""
    lines = []
    for cls in plan.classes:
        most = max((w.min_containers for w in cls.warm_schedule), default=cls.min_containers)
        if not most:
            continue
        gpu = cls.gpu if isinstance(cls.gpu, str) else cls.gpu[0]
        try:
            usd = gpu_price(gpu).usd_per_second * most * MONTH_S
        except UnknownGpuError:
            cost = "price unknown"
        else:
            every = "in its warm hours" if cls.warm_schedule else "all month"
            cost = f"about {usd.quantize(Decimal(1)):,} USD a month if kept {every}"
        lines.append(f"  {cls.name}: {most} x {gpu} kept warm ({cost})")
    return lines


def deploy_notices(plan: AppPlan, environ: Mapping[str, str], settings: Settings) -> list[str]:
    """The warnings for this deploy, each a block of lines (empty: nothing to say)."""
    notices = []
    if not environ.get("ADAPTER_MODELS_CONFIG"):
        warm = warm_cost(plan) or ["  (nothing kept warm)"]
        notices.append(
            "\n".join(
                [
                    RULE,
                    "ADAPTER_MODELS_CONFIG is not set: deploying the SAMPLE models of",
                    f"  {SAMPLE_MODELS_FILE}",
                    *warm,
                    "Stop now (Ctrl-C) unless that is what you want; otherwise",
                    "  export ADAPTER_MODELS_CONFIG=$PWD/aiModels.json",
                    "  modal deploy modal_app.py",
                    f"and remove this deployment with: modal app stop {plan.app_name}",
                    RULE,
                ]
            )
        )
    unpinned = unpinned_repos([cls.model for cls in plan.classes], plan.revisions)
    if unpinned:
        notices.append(
            "\n".join(
                [
                    f"Not in the Volume {plan.volume_name}'s revisions manifest (never "
                    "downloaded there?): " + ", ".join(unpinned),
                    "  these classes load whatever refs/main holds and fail to load without it;",
                    "  run `modal run modal_download.py`, then deploy again to pin them.",
                ]
            )
        )
    if plan.web is not None:
        sam2 = sum(
            cls.model.max_in_flight
            for cls in plan.classes
            if cls.model.pipeline is Pipeline.SEGMENT_ANYTHING_2
        )
        in_flight = min(sam2, plan.web.max_inputs)
        needed = sam2_web_memory_mb(in_flight) if sam2 else 0
        if needed > plan.web.memory_mb:
            notices.append(
                f"segment-anything-2 answers up to {in_flight} at once here (their capacity), "
                f"each ~64 MiB of text at 1024x1024 with logits: the web container needs about "
                f"{needed} MiB, above ADAPTER_MODAL_WEB_MEMORY_MB={plan.web.memory_mb}; set "
                f"ADAPTER_MODAL_WEB_MEMORY_MB={needed} (and ADAPTER_MODAL_WEB_CPU, ~0.5 "
                "CPU-seconds an answer) or lower their capacity (docs/modal.md)."
            )
    if settings.live_runner.results is not None:
        notices.append(
            "ADAPTER_LIVE_RUNNER_RESULTS names a file on this machine, which the deployed "
            "adapter cannot read: its Live Runner door prices from each entry's price_per_unit."
        )
    return notices
