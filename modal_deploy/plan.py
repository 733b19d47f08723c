"""The Modal deployment as plain data: which GPU classes `modal_app.py` defines, and how.

Everything here is computed from the parsed aiModels.json (`ServedModel`, with each entry's
`runner.modal` settings) and imports nothing from Modal, so tests assert on it offline and the
adapter's Modal backend derives class names and timeouts from the same functions that named
the deployed classes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.errors import ConfigError
from contract.modal_settings import MAX_TIMEOUT_S
from contract.pipelines import Pipeline
from modal_deploy.class_plan import ClassPlan
from modal_deploy.environment import COMPILE_CACHE_MOUNT, gpu_settings, settings_env, web_env
from modal_deploy.settings import (
    MODELS_JSON_ENV,
    REVISIONS_ENV,
    ModalDeploySettings,
    class_entries,
)
from modal_deploy.weights import MODELS_MOUNT, repo_revisions, revisions_json

logger = logging.getLogger(__name__)

# The packages of pyproject.toml's `dependencies`, installed in the image (a test keeps the two
# lists equal). On Linux, PyPI's torch wheel is the CUDA build.
IMAGE_PACKAGES = (
    "torch==2.13.0",
    "diffusers==0.42.1",
    "transformers==5.23.0",
    "accelerate==1.15.0",
    "safetensors>=0.8,<1",
    "tokenizers>=0.23,<1",
    "huggingface-hub>=2.4,<3",
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "pydantic>=2.14,<3",
    "pydantic-settings>=2.16,<3",
    "python-multipart>=0.0.34",
    "pillow>=13,<14",
    "isal>=1.9.1,<2",
    "numpy>=2.4,<3",
    "av>=18.1,<19",
    "nvidia-ml-py>=13",
    "prometheus-client==0.26.0",
    "websockets==17.4",
    "coincurve==21.0.0",
    "psycopg[binary]==3.3.9",
    "psycopg-pool==3.3.3",
    "boto3==1.44.8",
)
LOCAL_PACKAGES = ("adapter", "contract", "functions", "modal_deploy", "pricing")
PYTHON_VERSION = "3.11"

# Re-exported: where the weights Volume and the compile-cache Volume are mounted.
__all__ = ["COMPILE_CACHE_MOUNT", "MODELS_MOUNT"]
# Beyond a class's own limits (start + run), time for Modal to queue and route the call.
MAX_NAME_LENGTH = 64
WARM_SCHEDULE_CRON = "*/15 * * * *"


@dataclass(frozen=True)
class WebPlan:
    """The adapter served on Modal as an ASGI app (CPU only)."""

    label: str
    max_inputs: int
    min_containers: int
    timeout: int
    env: dict[str, str] = field(default_factory=dict)
    cpu: float = 0.25
    memory_mb: int = 1024
    # One container: the adapter's per-model capacity limits then hold for the whole app.
    max_containers: int = 1
    scaledown_window: int = 300

    def function_options(self) -> dict[str, Any]:
        return {
            "min_containers": self.min_containers,
            "max_containers": self.max_containers,
            "scaledown_window": self.scaledown_window,
            "timeout": self.timeout,
            "cpu": self.cpu,
            "memory": self.memory_mb,
        }


@dataclass(frozen=True)
class AppPlan:
    app_name: str
    volume_name: str
    compile_volume_name: str
    auth_secret: str
    hf_secret: str
    classes: tuple[ClassPlan, ...]
    web: WebPlan | None
    models_json: str
    # What every GPU class's worker runs with, as plain data (see `gpu_settings`).
    gpu_settings: Settings
    # The deploy's settings that the containers must share (see `settings_env`).
    settings_env: dict[str, str] = field(default_factory=dict)
    # The pinned commit of every repo the deploy loads (the Volume's manifest).
    revisions: dict[str, str] = field(default_factory=dict)

    @property
    def deploy_env(self) -> dict[str, str]:
        """What every function gets of the deploy as a whole: each container imports
        modal_app.py again and must define its function as the deploy did, under the same
        limits."""
        return {
            "ADAPTER_MODAL_APP": self.app_name,
            "ADAPTER_MODAL_WEB": str(self.web is not None).lower(),
            **self.settings_env,
        }

    @property
    def container_env(self) -> dict[str, str]:
        """The environment of the functions that call every class (the web adapter, the warm
        schedule): the whole file, so their containers define every class."""
        return {
            MODELS_JSON_ENV: self.models_json,
            REVISIONS_ENV: revisions_json(self.revisions),
            **self.deploy_env,
        }

    def gpu_class_options(self, plan: ClassPlan) -> dict[str, Any]:
        """Every keyword argument of `app.cls` for `plan` but the Modal objects (image and
        Volumes): the configured ones and the class's whole environment, which holds its own
        entries only (a GPU container defines its own class, from them)."""
        return {**plan.cls_options(), "env": {**self.deploy_env, **plan.env}}

    @property
    def stream_queue(self) -> str:
        return stream_queue_name(self.app_name)

    @property
    def has_warm_schedule(self) -> bool:
        return any(plan.warm_schedule for plan in self.classes)

    @property
    def failed_marks(self) -> str:
        return failed_marks_name(self.app_name)

    @property
    def scheduled(self) -> tuple[ClassPlan, ...]:
        return tuple(plan for plan in self.classes if plan.warm_schedule)

    def held_cold(self, failed_loads: Mapping[str, int]) -> frozenset[str]:
        """The classes kept at 0 warm containers whatever the hour: those whose definition
        (`failed_key`) failed `max_load_attempts` loads or more, counted over all the
        containers that tried it (`failed_loads`: the failed-marks Dict, key -> loads)."""
        bound = self.gpu_settings.max_load_attempts
        return frozenset(p.name for p in self.classes if failed_loads.get(p.failed_key, 0) >= bound)

    def warm_targets(
        self, when: datetime, failed_loads: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """min_containers per scheduled class at `when` (what the scheduled function applies);
        0 for a class `held_cold`: warming it again would only load, fail and stand down a
        fresh billed GPU container at each run of the schedule."""
        cold = self.held_cold(failed_loads or {})
        return {p.name: 0 if p.name in cold else p.min_containers_at(when) for p in self.scheduled}

    def web_min_containers_at(
        self, when: datetime, failed_loads: Mapping[str, int] | None = None
    ) -> int:
        """The web adapter's warm containers at `when`: one while any class is kept warm, so a
        warm model costs no web cold start, none while every class may scale to zero (a class
        held cold counts as cold)."""
        cold = self.held_cold(failed_loads or {})
        return web_min_containers(tuple(p for p in self.classes if p.name not in cold), when)


def _camel(pipeline: Pipeline) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", pipeline.value))


def class_name(pipeline: Pipeline, model_id: str) -> str:
    """The Modal class serving (pipeline, model_id): a Python identifier of at most 64 chars."""
    model = re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_") or "model"
    name = f"{_camel(pipeline)}__{model}"
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(model_id.encode()).hexdigest()[:6]
        name = f"{name[: MAX_NAME_LENGTH - 7]}_{digest}"
    return name


def stream_queue_name(app_name: str) -> str:
    """The Modal Queue that streamed responses travel through, one partition per request: the
    GPU class writes the chunks, the adapter reads them (see ModalBackend.stream)."""
    return f"{app_name[: MAX_NAME_LENGTH - 8]}-streams"


def failed_marks_name(app_name: str) -> str:
    """The Modal Dict of failed loads (key: a class's `failed_key`, value: {"loads": n,
    "error": ...}), added to by each container whose load failed, read by the warm schedule's
    function (`AppPlan.held_cold`)."""
    return f"{app_name[: MAX_NAME_LENGTH - 7]}-failed"


def web_min_containers(classes: tuple[ClassPlan, ...], when: datetime) -> int:
    return 1 if any(plan.min_containers_at(when) for plan in classes) else 0


def plan_class(model: ServedModel, now: datetime) -> ClassPlan:
    """The GPU class of one served model; raises ConfigError naming the model and field."""
    from adapter.pipelines import PIPELINES

    where = f"{model.key}: field 'runner.modal"
    if model.pipeline not in PIPELINES:
        raise ConfigError(
            f"{model.key}: field 'pipeline': {model.pipeline.value!r} has no implementation to "
            "run on Modal yet"
        )
    PIPELINES[model.pipeline].check_model(model)
    settings = model.runner.modal
    schedule = tuple(settings.warm_schedule)
    if settings.min_containers is not None:
        base_min = settings.min_containers
    else:
        base_min = 1 if model.warm else 0
    if model.warm and base_min == 0 and not schedule:
        raise ConfigError(
            f"{where}.min_containers': the entry is warm, so at least 1 container must stay "
            "warm (or give a warm_schedule)"
        )
    most_warm = max(w.min_containers for w in schedule) if schedule else base_min
    concurrency = settings.max_concurrent_inputs
    max_containers = settings.max_containers or max(
        math.ceil(model.max_in_flight / concurrency), most_warm, 1
    )
    if max_containers < most_warm:
        raise ConfigError(
            f"{where}.max_containers': {max_containers} is below the {most_warm} containers "
            "kept warm"
        )
    gpu = (settings.gpu, *settings.gpu_fallbacks) if settings.gpu_fallbacks else settings.gpu
    plan = ClassPlan(
        name=class_name(model.pipeline, model.model_id),
        model=model,
        gpu=gpu,
        min_containers=base_min,
        max_containers=max_containers,
        buffer_containers=settings.buffer_containers,
        scaledown_window=settings.scaledown_window,
        max_concurrent_inputs=concurrency,
        run_timeout=settings.timeout or math.ceil(model.request_timeout_s),
        startup_timeout=settings.startup_timeout,
        snapshot=settings.snapshot,
        warm_schedule=schedule,
    )
    if schedule:
        # The definition holds 0 whatever the hour of the deploy, so deploys at different
        # hours define the class alike; the warm schedule's function sets the hour's value
        # (Modal resets it to the definition's on each deploy: see docs/modal.md).
        plan = replace(plan, min_containers=0)
        if model.warm and any(plan.min_containers_at(now.replace(hour=h)) == 0 for h in range(24)):
            logger.warning(
                "%s is advertised warm but its warm_schedule leaves it cold in some hours",
                model.key,
            )
    return plan


def plan_classes(models: list[ServedModel], now: datetime) -> tuple[ClassPlan, ...]:
    plans = tuple(plan_class(model, now) for model in models)
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.name in seen:
            raise ConfigError(
                f"{plan.model.key} and {seen[plan.name]} map to the same Modal class "
                f"{plan.name}; rename one model_id"
            )
        seen[plan.name] = plan.model.key
    return plans


def build_plan(
    models: list[ServedModel],
    models_json: str,
    settings: Settings,
    deploy: ModalDeploySettings,
    now: datetime,
    revisions: dict[str, str] | None = None,
) -> AppPlan:
    """The deployment of `models`: `models_json` is the file as the containers get it (see
    `deployed_models_json`), `revisions` the Volume's manifest (repo -> pinned commit)."""
    revisions = dict(revisions or {})
    own = class_entries(models_json)
    classes = tuple(
        replace(
            plan,
            entries_json=own.get(plan.model.key, "[]"),
            revisions=repo_revisions(plan.model, revisions),
        )
        for plan in plan_classes(models, now)
    )
    web = WebPlan(
        label=deploy.web_label or settings.modal_app,
        max_inputs=deploy.web_max_inputs,
        # Fixed in the definition (scheduled classes count 0 there, whatever the deploy's
        # hour); the warm schedule's function follows the clock (`web_min_containers_at`).
        min_containers=1 if any(plan.min_containers for plan in classes) else 0,
        timeout=min(max(plan.call_wait_s for plan in classes) + 60, MAX_TIMEOUT_S),
        env=web_env(settings),
        cpu=deploy.web_cpu,
        memory_mb=deploy.web_memory_mb,
    )
    return AppPlan(
        app_name=settings.modal_app,
        volume_name=deploy.volume,
        compile_volume_name=deploy.compile_volume,
        auth_secret=deploy.auth_secret,
        hf_secret=deploy.hf_secret,
        classes=classes,
        web=web if deploy.web else None,
        models_json=models_json,
        gpu_settings=gpu_settings(settings),
        settings_env=settings_env(settings),
        revisions={repo: sha for plan in classes for repo, sha in plan.revisions},
    )
