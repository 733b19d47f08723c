"""The settings every container of the Modal app runs with, derived from the deploy's own as
plain data: the environment each function gets (which modal_app.py, imported again in the
container, reads), and the GPU workers' settings baked into the plan.
"""

from __future__ import annotations

from adapter.settings import Settings
from modal_deploy.weights import MODELS_MOUNT

# Compiled kernels on a Volume of their own, read-write; the weights Volume is read-only there.
COMPILE_CACHE_MOUNT = "/compile-cache"


def limits_env(settings: Settings) -> dict[str, str]:
    """The deploy's cost limits as the environment that sets them (`ADAPTER_MAX_*`)."""
    return {f"ADAPTER_{k.upper()}": str(v) for k, v in settings.limits.model_dump().items()}


def settings_env(settings: Settings) -> dict[str, str]:
    """The deploy's settings every container gets, set explicitly, so that modal_app.py,
    imported again there, reads the same and bakes the same `gpu_settings`: the cost limits
    (the GPU classes check some again: video frames at load, audio length, prompt tokens) and
    the compile choices."""
    return limits_env(settings) | {
        "ADAPTER_COMPILE_BACKEND": settings.compile_backend,
        "ADAPTER_COMPILE_MODE": settings.compile_mode,
        "ADAPTER_MAX_LOAD_ATTEMPTS": str(settings.max_load_attempts),
    }


def gpu_settings(settings: Settings) -> Settings:
    """What a GPU class's worker runs with, derived from the deploy's settings without reading
    any environment: CUDA named (never probed before a snapshot), the weights Volume as the
    model folder, compiled kernels kept on the compile-cache Volume (a new container reloads
    them instead of compiling for minutes), the deploy's limits, compile choices and bound on
    load attempts."""
    data = {
        "device": "cuda",
        "model_dir": MODELS_MOUNT,
        "compile_cache_dir": COMPILE_CACHE_MOUNT,
        "compile_backend": settings.compile_backend,
        "compile_mode": settings.compile_mode,
        "max_load_attempts": settings.max_load_attempts,
        "limits": settings.limits.model_dump(),
    }
    # By field name, through validation only: BaseSettings reads the environment in __init__.
    return Settings.model_validate(data, by_name=True)


def live_runner_env(settings: Settings) -> dict[str, str]:
    """The deploy's Live Runner door settings (`ADAPTER_LIVE_RUNNER_*`), for the deployed
    adapter, which serves the door on its own port with ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN.
    `results` names a file on the deploying machine, which no container has: left out (the
    deploy warns; the door then prices from each entry's price_per_unit)."""
    env = {}
    for name, value in settings.live_runner.model_dump().items():
        if name == "results" or value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[f"ADAPTER_LIVE_RUNNER_{name.upper()}"] = text
    return env


def web_env(settings: Settings) -> dict[str, str]:
    """Environment of the deployed adapter: the deploy's limits, queue and Live Runner
    settings carry over."""
    env = limits_env(settings) | live_runner_env(settings)
    env |= {
        "ADAPTER_QUEUE_TIMEOUT_S": str(settings.queue_timeout_s),
        "ADAPTER_RETRY_AFTER_S": str(settings.retry_after_s),
        "ADAPTER_MODAL_CONNECT_TIMEOUT_S": str(settings.modal_connect_timeout_s),
    }
    return env
