"""segment-anything-2 on Modal, offline: its GPU class is planned from the table like every
pipeline's, and the class's own local execution path answers as the glue does here."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
import torch

from adapter.pipelines import PIPELINES
from adapter.settings import Limits, Settings
from contract.pipelines import Pipeline
from contract.schemas import SegmentAnything2Form, Upload
from modal_deploy.notices import deploy_notices
from modal_deploy.settings import sam2_web_memory_mb
from tests.support.apps import make_settings
from tests.support.livepeer_multipart import png_bytes
from tests.support.modal_inprocess import import_modal_app, over_the_wire

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

CLASS = "SegmentAnything2__test_tiny_sam2"


@pytest.fixture(scope="module")
def sam2_modal_app(tiny_sam2, tmp_path_factory):
    entry = {
        "pipeline": "segment-anything-2",
        "model_id": "test/tiny-sam2",
        "warm": True,
        "capacity": 1,
        "runner": {"model_path": str(tiny_sam2), "modal": {"gpu": "L4"}},
    }
    path = tmp_path_factory.mktemp("modal-sam2") / "aiModels.json"
    path.write_text(json.dumps([entry]))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path)})


def test_the_class_is_planned_with_the_pipelines_time_limit(sam2_modal_app):
    (plan,) = sam2_modal_app.PLAN.classes
    assert plan.name == CLASS
    assert (plan.gpu, plan.min_containers, plan.run_timeout) == ("L4", 1, 120)


def test_the_modal_class_answers_as_the_glue_does_here(
    sam2_modal_app, define_in_process, tiny_sam2
):
    glue = PIPELINES[Pipeline.SEGMENT_ANYTHING_2]
    request = SegmentAnything2Form(
        image=Upload(png_bytes(64, 48), "in.png"),
        point_coords="[[20, 12]]",
        point_labels="[1]",
        box="[2, 2, 50, 40]",
        multimask_output="false",
    )
    prepared = asyncio.run(glue.prepare(request, Limits())).request
    model = define_in_process(sam2_modal_app).target(CLASS).obj
    response = asyncio.run(model.run.local(over_the_wire(prepared)))

    (plan,) = sam2_modal_app.PLAN.classes
    settings = make_settings(tiny_sam2)
    handle = glue.load(plan.model, tiny_sam2, torch.device("cpu"), torch.float32, settings)
    assert response == glue.run(handle, prepared, lambda: False)
    assert response.scores.count(",") == 0  # one mask


def test_the_deploy_says_what_memory_sam2_answers_need_in_the_web_container(sam2_modal_app):
    environ = {"ADAPTER_MODELS_CONFIG": "aiModels.json"}
    plan = sam2_modal_app.PLAN  # capacity 1: 165 + 200 MiB fit the default 1 GiB
    assert plan.web.memory_mb == 1024 and sam2_web_memory_mb(1) == 365
    assert not [n for n in deploy_notices(plan, environ, Settings()) if "segment" in n]
    (cls,) = plan.classes
    busy = replace(cls, model=replace(cls.model, capacity=12))
    assert busy.model.max_in_flight == 12
    notices = deploy_notices(replace(plan, classes=(busy,)), environ, Settings())
    (notice,) = [n for n in notices if "segment-anything-2" in n]
    assert "up to 12 at once" in notice and "ADAPTER_MODAL_WEB_MEMORY_MB=1190" in notice
    # More room set: nothing to say.
    roomy = replace(plan, classes=(busy,), web=replace(plan.web, memory_mb=1190))
    assert not [n for n in deploy_notices(roomy, environ, Settings()) if "segment" in n]
