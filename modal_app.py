"""The Modal app: one GPU class (warm pool) per aiModels.json model, and the adapter on the web.

    modal deploy modal_app.py

deploys the models of the aiModels.json at ADAPTER_MODELS_CONFIG (default: the sample
examples/aiModels.modal.json). Weights come from the Volume that `modal run modal_download.py`
fills; the adapter's bearer token from the Secret `livepeer-runner-auth` (AUTH_TOKEN). Every
setting is computed as plain data in modal_deploy/plan.py; this file reads the environment (on
the deploying machine, and again in each container, where the deploy set it explicitly) and
only wires Modal objects. See docs/modal.md.
"""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime

import modal
from fastapi import FastAPI

from adapter.settings import Settings
from modal_deploy.plan import WARM_SCHEDULE_CRON, build_plan
from modal_deploy.runtime import build_image, create_web_app, define_gpu_classes
from modal_deploy.settings import ModalDeploySettings, read_deploy_models

MODELS, MODELS_JSON = read_deploy_models(os.environ)
SETTINGS = Settings()
PLAN = build_plan(MODELS, MODELS_JSON, SETTINGS, ModalDeploySettings(), datetime.now(UTC))

app = modal.App(PLAN.app_name)
image = build_image()
volume = modal.Volume.from_name(PLAN.volume_name, create_if_missing=True)
# Streamed responses travel through it, one partition per request (ModalBackend.stream).
stream_queue = modal.Queue.from_name(PLAN.stream_queue, create_if_missing=True)

GPU_CLASSES = define_gpu_classes(
    app, PLAN, module=__name__, image=image, volume=volume, stream_queue=stream_queue
)
globals().update(GPU_CLASSES)

if PLAN.web is not None:
    auth_secret = modal.Secret.from_name(PLAN.auth_secret, required_keys=["AUTH_TOKEN"])

    @app.function(
        image=image,
        secrets=[auth_secret],
        env={**PLAN.web.env, **PLAN.container_env},
        **PLAN.web.function_options(),
    )
    @modal.concurrent(max_inputs=PLAN.web.max_inputs)
    @modal.asgi_app(label=PLAN.web.label)
    def web() -> FastAPI:
        from adapter.backends.modal import AppClasses

        # Read here, in the web container: the limits the deploy set, AUTH_TOKEN from the Secret.
        classes = AppClasses(GPU_CLASSES, stream_queue)
        return create_web_app(MODELS, classes, Settings(backend="modal"))


if PLAN.has_warm_schedule:

    @app.function(image=image, env={**PLAN.container_env}, schedule=modal.Cron(WARM_SCHEDULE_CRON))
    def apply_warm_schedule() -> dict[str, int]:
        """Set each scheduled class's warm containers for the current UTC hour."""
        targets = PLAN.warm_targets(datetime.now(UTC))
        for name, min_containers in targets.items():
            with warnings.catch_warnings():
                # Classes have no `autoscaler.update()` yet in modal 1.6; this one still works.
                warnings.simplefilter("ignore", modal.exception.DeprecationError)
                GPU_CLASSES[name]().update_autoscaler(min_containers=min_containers)
            print(f"{name}: min_containers={min_containers}")
        return targets
