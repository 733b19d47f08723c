"""The local backend over the model worker: weights checked at start, the one translation of
pipeline errors, the worker's guarded states. Glue is injected into the backend's registry;
most of these load no real model."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
import torch

from adapter.backends.base import ModelState
from adapter.pipelines.text_to_image import TextToImageRunner
from adapter.worker import ModelWorker
from contract.aimodels import merge_entries, parse_entries
from contract.errors import BadRequestError, InputError
from contract.schemas import TextToImageParams
from functions.cancel import GenerationCancelled
from tests.support.apps import make_settings, running_client, sd_entry
from tests.support.local_apps import app_with_glue

SMALL = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1}


class ScriptedTextToImage(TextToImageRunner):
    """Text-to-image glue that loads nothing and whose run raises what the test says."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.raises = raises
        self.loads = 0
        self.demos_built = 0

    def load(self, model, folder, device, dtype, settings):
        self.loads += 1
        return object()

    def optimize(self, handle, model, settings):
        pass

    def run(self, handle, request, should_stop):
        assert self.raises is not None
        raise self.raises

    def build_demo(self, folder: Path) -> None:
        self.demos_built += 1
        (folder / "model_index.json").write_text("{}")


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A model folder with something in it (the start check looks, never loads)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    return folder


# --- weights checked at start ------------------------------------------------------------


def test_a_cold_model_with_missing_weights_is_error_at_once(app_factory, tmp_path, caplog):
    missing = tmp_path / "not-downloaded"
    app = app_factory([sd_entry(missing, warm=False)])
    with caplog.at_level(logging.ERROR), running_client(app) as client:
        # Before any request: the weights are not where the configuration says.
        assert client.get("/health").json() == {"status": "ERROR"}
        response = client.post("/text-to-image", json=SMALL)
    assert response.status_code == 500
    msg = response.json()["detail"]["msg"]
    assert msg == f"Model test/tiny-sd failed to load: model folder {missing} does not exist"
    logged = [r.getMessage() for r in caplog.records if r.name == "adapter.worker"]
    assert any("text-to-image/test/tiny-sd" in line and str(missing) in line for line in logged)


def test_an_empty_model_folder_is_missing_weights(app_factory, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with running_client(app_factory([sd_entry(empty, warm=False)])) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        msg = client.post("/text-to-image", json=SMALL).json()["detail"]["msg"]
    assert f"model folder {empty} is empty" in msg


def test_a_model_id_missing_from_the_hf_cache_is_error_naming_the_cache(app_factory, tmp_path):
    entry = {"pipeline": "text-to-image", "model_id": "org/not-there", "capacity": 1}
    cache = tmp_path / "hf-cache"
    with running_client(app_factory([entry], model_dir=cache)) as client:
        assert client.get("/health").json() == {"status": "ERROR"}
        msg = client.post("/text-to-image", json=SMALL).json()["detail"]["msg"]
    assert "'org/not-there' is not in the Hugging Face cache at" in msg
    assert str(cache) in msg
    assert "hf download org/not-there" in msg


def test_weights_in_the_hf_cache_pass_the_check_without_a_load(tmp_path):
    cache = tmp_path / "hf-cache"
    repo = cache / "models--org--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    glue = ScriptedTextToImage()
    entry = {"pipeline": "text-to-image", "model_id": "org/cached", "capacity": 1}
    with running_client(app_with_glue(tmp_path, [entry], glue, model_dir=cache)) as client:
        assert client.get("/health").json() == {"status": "IDLE"}
    assert glue.loads == 0


def test_demo_models_are_built_when_loaded_not_checked(tmp_path):
    glue = ScriptedTextToImage(raises=BadRequestError("built."))
    folder = tmp_path / "demo" / "tiny"
    entry = sd_entry(folder, warm=False, runner={"demo": True})
    with running_client(app_with_glue(tmp_path, [entry], glue)) as client:
        assert client.get("/health").json() == {"status": "IDLE"}  # not built yet, not ERROR
        assert client.post("/text-to-image", json=SMALL).status_code == 400  # ran: loaded
        assert client.get("/health").json() == {"status": "OK"}
    assert (glue.demos_built, glue.loads) == (1, 1)
    assert (folder / "model_index.json").is_file()


# --- the one translation of pipeline errors ----------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "msg"),
    [
        (
            InputError("height and width must be multiples of 8, got 60x64"),
            400,
            "height and width must be multiples of 8, got 60x64.",
        ),
        (InputError("strength must be between 0 and 1."), 400, "strength must be between 0 and 1."),
        (BadRequestError("The tree's own error."), 400, "The tree's own error."),
        # A ValueError from deep inside a library is no fault of the client's.
        (
            ValueError("Padding size should be less than the input dimension"),
            500,
            "Text-to-image pipeline error.",
        ),
        (
            TypeError("argument 'text': 'str' object cannot be converted"),
            500,
            "Text-to-image pipeline error.",
        ),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
            500,
            "GPU out of memory.",
        ),
    ],
)
def test_pipeline_errors_are_translated_in_one_place(tmp_path, weights, raised, status, msg):
    glue = ScriptedTextToImage(raises=raised)
    with running_client(app_with_glue(tmp_path, [sd_entry(weights)], glue)) as client:
        response = client.post("/text-to-image", json=SMALL)
    assert (response.status_code, response.json()) == (status, {"detail": {"msg": msg}})


def test_an_unexpected_pipeline_failure_is_logged(tmp_path, weights, caplog):
    glue = ScriptedTextToImage(raises=ValueError("deep inside diffusers"))
    with (
        caplog.at_level(logging.ERROR),
        running_client(app_with_glue(tmp_path, [sd_entry(weights)], glue)) as client,
    ):
        assert client.post("/text-to-image", json=SMALL).status_code == 500
    failed = [r for r in caplog.records if r.name == "adapter.worker" and r.exc_info]
    assert failed and "text-to-image/test/tiny-sd failed" in failed[0].getMessage()
    assert "deep inside diffusers" in str(failed[0].exc_info[1])


# --- the worker's states -----------------------------------------------------------------


def worker_for(tmp_path: Path, folder: Path, glue: TextToImageRunner) -> ModelWorker:
    (model,) = merge_entries(parse_entries([sd_entry(folder, warm=False)]))
    return ModelWorker(model, make_settings(tmp_path), glue)


def test_the_worker_moves_only_along_its_state_machine(tmp_path, weights):
    worker = worker_for(tmp_path, weights, ScriptedTextToImage())
    assert worker.state is ModelState.COLD
    with pytest.raises(RuntimeError, match="no transition COLD -> READY"):
        worker._move(ModelState.READY)
    worker.load()
    assert (worker.state, str(worker.device)) == (ModelState.READY, "cpu")
    with pytest.raises(RuntimeError, match="cannot load while READY"):
        worker.load()
    assert worker.start_load() is False  # loaded: nothing to start
    worker.close()


def test_a_failed_load_can_be_tried_again(tmp_path):
    folder = tmp_path / "arrives-later"
    glue = ScriptedTextToImage()
    worker = worker_for(tmp_path, folder, glue)
    assert worker.check_weights() is False
    assert worker.state is ModelState.FAILED
    assert f"model folder {folder} does not exist" in worker.error
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")

    async def retry() -> None:
        assert worker.start_load() is True
        assert worker.start_load() is False  # one load at a time: later callers wait for it
        await worker.wait_loaded(30)

    asyncio.run(retry())
    assert (worker.state, worker.error, glue.loads) == (ModelState.READY, "", 1)
    worker.close()


def test_a_request_for_a_model_not_loaded_yet_is_refused(tmp_path, weights):
    worker = worker_for(tmp_path, weights, ScriptedTextToImage())
    request = TextToImageParams(**SMALL)
    with pytest.raises(Exception, match="is not loaded yet"):
        asyncio.run(worker.run(request))


class StepsUntilStopped(TextToImageRunner):
    """Glue whose run is a generation that goes on, step after step, until told to stop."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, float]] = []

    def load(self, model, folder, device, dtype, settings):
        return object()

    def optimize(self, handle, model, settings):
        pass

    def run(self, handle, request, should_stop):
        started = time.monotonic()
        while not should_stop():
            assert time.monotonic() - started < 30, "never stopped"
            time.sleep(0.01)
        self.runs.append((started, time.monotonic()))
        raise GenerationCancelled()


def test_a_time_limit_bounds_each_run_from_when_it_reaches_the_model(tmp_path, weights):
    glue = StepsUntilStopped()
    worker = worker_for(tmp_path, weights, glue)
    worker.load()
    request = TextToImageParams(**SMALL)

    async def two_at_once() -> list[BaseException]:
        runs = [worker.run(request, time_limit_s=0.3) for _ in range(2)]
        return await asyncio.gather(*runs, return_exceptions=True)

    errors = asyncio.run(two_at_once())
    worker.close()
    assert [str(error) for error in errors] == [
        "text-to-image/test/tiny-sd ran past its 0.3 s time limit."
    ] * 2
    (_, first_end), (second_start, second_end) = glue.runs
    # The second waited for the first on the model's thread; its wait did not use its limit.
    assert second_start >= first_end
    assert second_end - second_start >= 0.29
