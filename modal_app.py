"""The Modal app: one GPU class (warm pool) per aiModels.json model, and the adapter on the web.

    export ADAPTER_MODELS_CONFIG=$PWD/aiModels.json
    modal deploy modal_app.py

deploys the models of the aiModels.json at ADAPTER_MODELS_CONFIG (without it, the sample
examples/aiModels.modal.json, with a loud warning: it keeps an L40S warm). Weights come from
the Volume that `modal run modal_download.py` fills, each class pinned to the revisions its
manifest records; the adapter's bearer token from the Secret `livepeer-runner-auth`
(AUTH_TOKEN). Every setting is computed as plain data in modal_deploy/plan.py; this file reads
the environment (on the deploying machine, and again in each container, where the deploy set
it explicitly: a GPU class's container gets its own entries only) and only wires Modal
objects. See docs/modal.md.
"""

from __future__ import annotations

import os
import sys
import warnings
from datetime import UTC, datetime

import modal
from fastapi import FastAPI

from adapter.settings import Settings
from functions.download import REVISIONS_FILE
from modal_deploy.notices import deploy_notices
from modal_deploy.plan import WARM_SCHEDULE_CRON, build_plan
from modal_deploy.runtime import build_image, create_web_app, define_gpu_classes
from modal_deploy.settings import (
    MODELS_JSON_ENV,
    ModalDeploySettings,
    read_deploy_models,
    read_deploy_revisions,
)

DEPLOYING = MODELS_JSON_ENV not in os.environ  # on the operator's machine, not in a container
DEPLOY = ModalDeploySettings()


def _volume_manifest() -> str | None:
    """The weights Volume's revisions manifest, read through Modal's API at deploy time."""
    try:
        data = b"".join(modal.Volume.from_name(DEPLOY.volume).read_file(REVISIONS_FILE))
    except (FileNotFoundError, modal.exception.NotFoundError):
        return None  # no download yet
    except modal.exception.AuthError as exc:
        print(f"Cannot read the Volume's revisions manifest: {exc}", file=sys.stderr)
        return None  # no token: the deploy itself will say so
    return data.decode()


MODELS, MODELS_JSON = read_deploy_models(os.environ)
REVISIONS = read_deploy_revisions(os.environ, _volume_manifest)
SETTINGS = Settings()
PLAN = build_plan(MODELS, MODELS_JSON, SETTINGS, DEPLOY, datetime.now(UTC), REVISIONS)
if DEPLOYING:
    for notice in deploy_notices(PLAN, os.environ, SETTINGS):
        print(notice, file=sys.stderr, flush=True)

app = modal.App(PLAN.app_name)
image = build_image()
volume = modal.Volume.from_name(PLAN.volume_name, create_if_missing=True)
compile_cache = modal.Volume.from_name(PLAN.compile_volume_name, create_if_missing=True)
# Streamed responses travel through it, one partition per request (ModalBackend.stream).
stream_queue = modal.Queue.from_name(PLAN.stream_queue, create_if_missing=True)
# Failed loads per class definition: the warm schedule keeps a class failing past the bound cold.
failed_marks = modal.Dict.from_name(PLAN.failed_marks, create_if_missing=True)

GPU_CLASSES = define_gpu_classes(
    app,
    PLAN,
    module=__name__,
    image=image,
    volume=volume,
    compile_cache=compile_cache,
    stream_queue=stream_queue,
    failed_marks=failed_marks,
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
        """Set each scheduled class's warm containers for the current UTC hour, and the web
        adapter's (one while any class is kept warm); a class whose loads failed past the bound
        (the failed-marks Dict) stays at 0. Also run it right after a deploy, which resets them
        to the definition's 0 (docs/modal.md)."""
        now = datetime.now(UTC)
        # One read per key: it also keeps the mark from expiring (7 days without access).
        failed_loads = {
            p.failed_key: int((failed_marks.get(p.failed_key) or {}).get("loads", 0))
            for p in PLAN.classes
        }
        cold = PLAN.held_cold(failed_loads)
        targets = PLAN.warm_targets(now, failed_loads)
        for name, min_containers in targets.items():
            with warnings.catch_warnings():
                # Classes have no `autoscaler.update()` yet in modal 1.6; this one still works.
                warnings.simplefilter("ignore", modal.exception.DeprecationError)
                GPU_CLASSES[name]().update_autoscaler(min_containers=min_containers)
            why = f" (held cold: its loads failed; see modal dict items {PLAN.failed_marks})"
            print(f"{name}: min_containers={min_containers}{why if name in cold else ''}")
        if PLAN.web is not None:
            targets["web"] = PLAN.web_min_containers_at(now, failed_loads)
            web.autoscaler.update(min_containers=targets["web"])
            print(f"web: min_containers={targets['web']}")
        return targets
