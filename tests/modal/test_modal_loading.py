"""How a GPU class loads, through Modal's local execution of modal_app.py's classes: the
compile cache committed once the model is ready (before a GPU snapshot, after a CPU one), and a
failed load that keeps the container up, FAILED, instead of crash-looping a warm pool."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from adapter.backends.base import ModelState
from adapter.pipelines import PIPELINES
from adapter.settings import Settings
from adapter.worker import ModelWorker
from contract.aimodels import merge_entries, parse_entries
from contract.errors import ModelUnavailableError
from contract.pipelines import Pipeline
from modal_deploy.runtime import create_web_app
from tests.support.apps import wait_until_settled
from tests.support.modal_inprocess import InProcessTarget, import_modal_app, tiny_entries

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")

TINY = "TextToImage__test_tiny_sd"
SMALL = {"prompt": "a lighthouse", "width": 64, "height": 48, "num_inference_steps": 2}


def app_of(tmp_path, entries):
    path = tmp_path / "aiModels.json"
    path.write_text(json.dumps(entries))
    return import_modal_app({"ADAPTER_MODELS_CONFIG": str(path), "RUNNER_MODEL_REVISIONS": "{}"})


def test_the_compile_cache_is_committed_once_the_model_is_warm(in_process_classes):
    served = in_process_classes()
    assert served.compile_cache_commits == []
    served.target(TINY)  # the container starts: enter (snapshot "cpu"), then restore
    assert served.target(TINY).loaded["state"] == "READY"
    assert served.compile_cache_commits == ["compile cache committed"]


def test_a_gpu_snapshot_holds_the_model_compiled_and_warmed_up(
    tmp_path, tiny_sd, define_in_process
):
    entries = tiny_entries(tiny_sd)[:1]
    entries[0]["runner"]["modal"]["snapshot"] = "gpu"
    served = define_in_process(app_of(tmp_path, entries))
    model = served.classes[TINY]()
    model._before_snapshot()  # what Modal runs before taking the GPU snapshot
    # Loaded, optimized (compile, warm-up) and its kernels committed, all before the snapshot.
    assert model.worker.state is ModelState.READY
    assert served.compile_cache_commits == ["compile cache committed"]
    handle = model.worker._handle
    model._after_restore()  # restored: nothing left to do
    assert model.worker._handle is handle and model.worker.load_attempts == 1
    assert served.compile_cache_commits == ["compile cache committed"]


def failing_entries(tmp_path, tiny_sd, snapshot):
    entries = tiny_entries(tiny_sd)[:1]
    entries[0]["runner"]["model_path"] = str(tmp_path / "not-downloaded")
    entries[0]["runner"]["modal"]["snapshot"] = snapshot
    return entries


@pytest.mark.parametrize("snapshot", ["cpu", "off"])
def test_a_failed_load_keeps_the_container_up_failed_and_lowers_its_warm_pool(
    tmp_path, tiny_sd, define_in_process, snapshot
):
    app = app_of(tmp_path, failing_entries(tmp_path, tiny_sd, snapshot))
    served = define_in_process(app)
    target = served.target(TINY)  # enter ran: it did not raise (Modal would start another)
    assert target.loaded["state"] == "FAILED"
    assert "not-downloaded does not exist" in target.loaded["error"]
    model = target.obj
    # Tried before the snapshot (no stand-down there) and once more after the restore.
    assert model.worker.load_attempts == (2 if snapshot == "cpu" else 1)
    assert model.stood_down  # its warm pool lowered to 0 (a Modal call in a container)
    assert served.compile_cache_commits == []

    # The adapter answers each request at once with the load's error, and reports ERROR.
    settings = Settings(backend="modal", auth_token="t")
    web = create_web_app(app.MODELS, served, settings)
    with TestClient(web, headers={"Authorization": "Bearer t"}) as client:
        assert wait_until_settled(client) == "OK"  # the class is deployed: found
        response = client.post("/text-to-image", json=SMALL)
        assert response.status_code == 500
        assert "failed to load" in response.json()["detail"]["msg"]
        assert client.get("/health").json() == {"status": "ERROR"}
    assert model.worker.load_attempts == (2 if snapshot == "cpu" else 1)  # not reloaded


def test_a_models_loads_are_bounded_then_it_stays_failed(tmp_path, tiny_sd):
    entry = {
        "pipeline": "text-to-image",
        "model_id": "test/missing",
        "runner": {"model_path": str(tmp_path / "missing")},
    }
    (model,) = merge_entries(parse_entries([entry]))
    settings = Settings(device="cpu", max_load_attempts=2)
    worker = ModelWorker(model, settings, PIPELINES[Pipeline.TEXT_TO_IMAGE])
    with pytest.raises(ModelUnavailableError, match=r"missing does not exist$"):
        worker.load()
    assert not worker.gave_up
    with pytest.raises(
        ModelUnavailableError,
        match=r"does not exist \(tried 2 times, ADAPTER_MAX_LOAD_ATTEMPTS; not",
    ):
        worker.load()  # the last one: its error says so
    assert worker.gave_up and worker.state is ModelState.FAILED
    with pytest.raises(
        ModelUnavailableError, match="tried 2 times, ADAPTER_MAX_LOAD_ATTEMPTS; not tried again"
    ):
        worker.load()
    assert not worker.start_load()  # nor on the model's thread (the local backend's retry)
    assert worker.load_attempts == 2
    # The folder appears: a restart (a new worker) loads it.
    (tmp_path / "missing").symlink_to(tiny_sd, target_is_directory=True)
    fresh = ModelWorker(model, settings, PIPELINES[Pipeline.TEXT_TO_IMAGE])
    fresh.load()
    assert fresh.state is ModelState.READY


def test_a_class_failing_past_the_bound_stays_cold_through_its_warm_windows(
    tmp_path, tiny_sd, define_in_process
):
    entries = failing_entries(tmp_path, tiny_sd, "off")
    entries[0]["runner"]["modal"]["warm_schedule"] = [{"hours_utc": "0-23", "min_containers": 1}]
    app = app_of(tmp_path, entries)
    served = define_in_process(app)
    (plan,) = app.PLAN.classes
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def schedule() -> dict[str, int]:  # what apply_warm_schedule computes from the Dict
        loads = {plan.failed_key: (served.failed_marks.get(plan.failed_key) or {}).get("loads", 0)}
        return app.PLAN.warm_targets(noon, loads) | {
            "web": app.PLAN.web_min_containers_at(noon, loads)
        }

    assert schedule() == {TINY: 1, "web": 1}
    # Each run of the cron raises the warm pool again: a fresh container loads, fails, stands
    # down. Their failed loads add up in the Dict that outlives them ...
    for container in range(1, app.PLAN.gpu_settings.max_load_attempts + 1):
        assert schedule()[TINY] == 1
        model = InProcessTarget(served.classes[TINY], served).obj
        assert model.stood_down and model.worker.load_attempts == 1
        mark = served.failed_marks.get(plan.failed_key)
        assert mark["loads"] == container and "does not exist" in mark["error"]
    # ... past the bound (ADAPTER_MAX_LOAD_ATTEMPTS, over all containers), no window warms it.
    assert schedule() == {TINY: 0, "web": 0}
    hours = [noon.replace(hour=h) for h in range(24)]
    assert {app.PLAN.warm_targets(h, {plan.failed_key: 3})[TINY] for h in hours} == {0}

    # A redeploy with the entry fixed is another definition: tried again (new pinned
    # revisions too: tests/modal/test_modal_plan.py).
    entries[0]["runner"]["model_path"] = str(tiny_sd)
    redeployed = app_of(tmp_path, entries)
    (new_plan,) = redeployed.PLAN.classes
    assert new_plan.name == plan.name and new_plan.failed_key != plan.failed_key
    loads = {new_plan.failed_key: 0, plan.failed_key: 3}
    assert redeployed.PLAN.warm_targets(noon, loads) == {TINY: 1}
    # The operator's `modal dict clear <app>-failed` clears it for the same definition too.
    assert app.PLAN.failed_marks == "livepeer-ai-runner-failed"
    served.failed_marks.clear()
    assert schedule() == {TINY: 1, "web": 1}
