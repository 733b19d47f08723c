"""modal_app.py offline: what Modal records for each class (`.info()`), and the classes' own
local execution path running a tiny pipeline with the adapter's glue."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from adapter.pipelines import PIPELINES
from contract.pipelines import Pipeline
from contract.schemas import ImageToImageForm, TextToImageParams, Upload
from modal_deploy.plan import LOCAL_PACKAGES
from modal_deploy.settings import MODELS_JSON_ENV
from tests.support.apps import make_settings
from tests.support.images import decode, pixels
from tests.support.modal_inprocess import (
    import_modal_app,
    modal_token_configured,
    over_the_wire,
    tiny_entries,
)

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

TINY = "TextToImage__test_tiny_sd"
ONE_SECOND = "TextToImage__test_one_second_sd"


def test_modal_app_imports_offline_and_modal_records_each_models_settings():
    app = import_modal_app({})  # the committed sample, as `modal deploy modal_app.py` reads it
    assert app.app.name == "livepeer-ai-runner"
    for plan in app.PLAN.classes:
        info = app.GPU_CLASSES[plan.name]().run.info()
        gpus = [plan.gpu] if isinstance(plan.gpu, str) else list(plan.gpu)
        assert info.gpus == [(gpu, 1) for gpu in gpus]
        assert (info.timeout, info.startup_timeout) == (plan.timeout, 600)
        assert info.concurrency_info.max_inputs == plan.max_concurrent_inputs
        # Modal aims at one input per container: the most its one model thread runs at once.
        assert info.concurrency_info.target_inputs == 1
        # The weights read-only; compiled kernels on their own Volume, committed explicitly.
        assert {p: (m.name, m.read_only) for p, m in info.volumes.items()} == {
            "/models": ("livepeer-models", True),
            "/compile-cache": ("livepeer-compile-cache", False),
        }
        assert len(info.secrets) == 1 and info.secrets[0].startswith("Secret.from_dict(")
        assert info.method_names == ["check", "run", "run_reporting", "stream_into"]
    lightning, turbo = app.PLAN.classes
    assert lightning.gpu == ("L40S", "A100-80GB")
    assert (lightning.min_containers, lightning.max_containers) == (1, 2)  # warm, capacity 2
    assert (turbo.min_containers, turbo.max_containers, turbo.scaledown_window) == (0, 1, 120)

    web = app.web.info()
    assert web.gpus == []
    assert web.concurrency_info.max_inputs == 100
    assert "modal.Secret.from_name('livepeer-runner-auth')" in web.secrets
    # No Modal proxy auth: go-livepeer sends only its bearer token, which the adapter checks.
    assert web.web_info.unauthenticated is True
    assert web.timeout == app.PLAN.web.timeout
    assert not hasattr(app, "apply_warm_schedule")  # the sample has no warm schedule
    classes_only = import_modal_app({"ADAPTER_MODAL_WEB": "false"})
    assert not hasattr(classes_only, "web")
    assert list(classes_only.GPU_CLASSES) == list(app.GPU_CLASSES)


def test_a_warm_schedule_adds_a_scheduled_function(tiny_sd, tmp_path):
    entries = tiny_entries(tiny_sd)[:1]
    entries[0]["runner"]["modal"]["warm_schedule"] = [{"hours_utc": "8-20"}]
    path = tmp_path / "aiModels.json"
    path.write_text(json.dumps(entries))
    app = import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})
    assert app.apply_warm_schedule.info().schedule is not None
    assert app.apply_warm_schedule.info().gpus == []


def test_containers_rebuild_the_same_classes_from_the_deploys_models(tiny_modal_app):
    inside = import_modal_app(
        {
            MODELS_JSON_ENV: tiny_modal_app.MODELS_JSON,
            "ADAPTER_MODELS_CONFIG": "/nonexistent/aiModels.json",
        }
    )
    assert list(inside.GPU_CLASSES) == list(tiny_modal_app.GPU_CLASSES) == [TINY, ONE_SECOND]
    assert [c.cls_options() for c in inside.PLAN.classes] == [
        c.cls_options() for c in tiny_modal_app.PLAN.classes
    ]


def test_a_tiny_pipeline_runs_through_the_modal_classs_local_execution(
    tiny_modal_app, in_process_classes, tiny_sd
):
    model = in_process_classes().target(TINY).obj
    # A sync method runs the class's enter methods (the load) first.
    assert model.check.local() == {
        "model": "text-to-image/test/tiny-sd",
        "class": TINY,
        "state": "READY",
        "error": "",
        "revisions": "",  # its weights are a local folder: nothing to pin
        "device": "cpu",
        "gpu": "",
        "load_s": model.check.local()["load_s"],
    }
    request = TextToImageParams(
        prompt="a lighthouse",
        width=64,
        height=48,
        num_inference_steps=2,
        seed=11,
        num_images_per_prompt=2,
    )
    response = asyncio.run(model.run.local(over_the_wire(request)))
    assert [image.seed for image in response.images] == [11, 12]
    assert decode(response.images[0].url).size == (64, 48)

    # The same glue in this process gives the same pixels: the GPU side runs the same code.
    glue = PIPELINES[Pipeline.TEXT_TO_IMAGE]
    served = tiny_modal_app.PLAN.classes[0].model
    handle = glue.load(served, tiny_sd, torch.device("cpu"), torch.float32, make_settings(tiny_sd))
    direct = glue.run(handle, request, lambda: False)
    assert np.array_equal(pixels(direct.images[1].url), pixels(response.images[1].url))


def test_cpu_snapshot_loads_before_the_snapshot_and_off_loads_after(
    tiny_modal_app, in_process_classes
):
    # The deployed class, whose settings name CUDA: before a CPU snapshot nothing touches it.
    snapshotted = tiny_modal_app.GPU_CLASSES[TINY]()
    snapshotted._before_snapshot()  # what Modal runs before taking the memory snapshot
    worker = snapshotted.worker
    # Loaded on the CPU in the GPU's dtype, not yet finished (moved and optimized after each
    # restore).
    assert (str(worker.device), worker.state) == ("cpu", "LOADING")
    assert worker._handle.pipe.dtype == torch.float16
    assert not torch.cuda.is_initialized()

    plain = in_process_classes().classes[ONE_SECOND]()
    plain._before_snapshot()
    # snapshot "off": nothing loaded before start finishes
    assert (plain.worker.device, plain.worker.state) == (None, "COLD")
    plain._after_restore()
    assert (str(plain.worker.device), plain.worker.state) == ("cpu", "READY")


def test_moving_a_cpu_loaded_text_to_image_model_keeps_its_output(tiny_modal_app, tiny_sd):
    glue = PIPELINES[Pipeline.TEXT_TO_IMAGE]
    assert glue.movable
    served = tiny_modal_app.PLAN.classes[0].model
    settings = make_settings(tiny_sd)
    handle = glue.load(served, tiny_sd, torch.device("cpu"), torch.float32, settings)
    request = TextToImageParams(prompt="x", width=64, height=64, num_inference_steps=1, seed=3)
    before = glue.run(handle, request, lambda: False)
    moved = glue.to_device(handle, torch.device("cpu"))
    assert moved.pipe.device.type == "cpu"
    after = glue.run(moved, request, lambda: False)
    assert np.array_equal(pixels(before.images[0].url), pixels(after.images[0].url))


def test_prepared_multipart_request_crosses_modals_serializer():
    upload = Upload(b"\x89PNG fake bytes", filename="in.png", content_type="image/png")
    prepared = ImageToImageForm(prompt="make it blue", image=upload, strength=0.5)
    arrived = over_the_wire(prepared)
    assert isinstance(arrived, ImageToImageForm)
    assert arrived.image == upload
    assert (arrived.image.filename, arrived.prompt, arrived.strength) == (
        "in.png",
        "make it blue",
        0.5,
    )


@pytest.mark.skipif(modal_token_configured(), reason="a Modal token is configured here")
def test_web_function_serves_the_adapter_and_answers_json_without_a_token(tiny_modal_app):
    with mock.patch.dict(os.environ, {"AUTH_TOKEN": "web-token"}):
        web = tiny_modal_app.web.local()
    with TestClient(web, headers={"Authorization": "Bearer web-token"}) as client:
        assert client.get("/health").json() == {"status": "OK"}
        assert client.get("/version").json()["model_id"] == "test/tiny-sd"
        # Outside a running app, with no Modal token, Modal refuses at once: a JSON 500.
        response = client.post("/text-to-image", json={"prompt": "x", "width": 64, "height": 64})
    assert response.status_code == 500
    assert "Token missing" in response.json()["detail"]["msg"]


def test_the_image_carries_every_local_package_the_deployed_code_imports(tiny_modal_app):
    # What the web function builds, in a container that imported modal_app.py.
    with mock.patch.dict(os.environ, {"AUTH_TOKEN": "web-token"}):
        tiny_modal_app.web.local()
    repo = Path(tiny_modal_app.__file__).resolve().parent
    local = {
        top
        for top in {name.split(".")[0] for name in list(sys.modules)}
        if (repo / top / "__init__.py").is_file() or (repo / f"{top}.py").is_file()
    }
    # Modal mounts modal_app.py itself; every other local package must be added to the image.
    # `tests` and `bench` are here only because this process runs the test suite.
    missing = local - set(LOCAL_PACKAGES) - {"modal_app", "modal_download", "tests", "bench"}
    assert not missing, f"add {sorted(missing)} to modal_deploy.plan.LOCAL_PACKAGES"
