"""The Modal deployment plan as plain data: what each aiModels.json entry becomes on Modal."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.settings import Limits, Settings
from contract.aimodels import merge_entries, parse_entries
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from functions.download import select_files
from modal_deploy.plan import (
    IMAGE_PACKAGES,
    build_plan,
    class_name,
    gpu_settings,
    plan_classes,
)
from modal_deploy.settings import (
    MODELS_JSON_ENV,
    REVISIONS_ENV,
    SAMPLE_MODELS_FILE,
    ModalDeploySettings,
    deployed_models_json,
    read_deploy_models,
)
from modal_deploy.weights import download_targets

NOON = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)
NIGHT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]

ENTRIES = [
    {
        "pipeline": "text-to-image",
        "model_id": "SG161222/RealVisXL_V4.0_Lightning",
        "warm": True,
        "capacity": 4,
        "token": "secret-1",
        "price_per_unit": 1e-08,
        "runner": {
            "modal": {
                "gpu": "L40S",
                "gpu_fallbacks": ["A100-80GB", "H100"],
                "buffer_containers": 1,
                "scaledown_window": 900,
                "max_concurrent_inputs": 2,
                "timeout": 120,
            }
        },
    },
    {
        "pipeline": "text-to-image",
        "model_id": "stabilityai/sdxl-turbo",
        "capacity": 1,
        "runner": {"modal": {"gpu": "L4", "snapshot": "gpu", "max_containers": 3}},
    },
    {
        "pipeline": "text-to-image",
        "model_id": "acme/day-model",
        "warm": True,
        "capacity": 2,
        "runner": {
            "modal": {
                "snapshot": "off",
                "warm_schedule": [
                    {"hours_utc": "8-20", "min_containers": 2},
                    {"hours_utc": "22-2"},
                ],
            }
        },
    },
]


def plan_of(entries, now=NOON, **settings):
    models = merge_entries(parse_entries(entries))
    text = deployed_models_json(entries)
    return build_plan(models, text, Settings(**settings), ModalDeploySettings(), now)


def test_each_entry_becomes_a_gpu_class_with_its_settings():
    plan = plan_of(ENTRIES)
    lightning, turbo, day = plan.classes
    assert [c.name for c in plan.classes] == [
        "TextToImage__SG161222_RealVisXL_V4_0_Lightning",
        "TextToImage__stabilityai_sdxl_turbo",
        "TextToImage__acme_day_model",
    ]
    assert lightning.cls_options() == {
        "gpu": ["L40S", "A100-80GB", "H100"],
        "min_containers": 1,  # warm: one container always up
        "max_containers": 2,  # capacity 4 / 2 inputs per container
        "buffer_containers": 1,
        "scaledown_window": 900,
        "timeout": 240,  # 120 s per run, and a second input may wait for the first
        "startup_timeout": 600,
        "enable_memory_snapshot": True,
    }
    assert lightning.max_concurrent_inputs == 2
    assert turbo.cls_options() == {
        "gpu": "L4",
        "min_containers": 0,  # cold
        "max_containers": 3,
        "scaledown_window": 300,
        "timeout": 300,
        "startup_timeout": 600,
        "enable_memory_snapshot": True,
        "experimental_options": {"enable_gpu_snapshot": True},
    }
    assert day.cls_options()["enable_memory_snapshot"] is False
    assert lightning.concurrency_options() == {"max_inputs": 2, "target_inputs": 1}
    # Weights come from the Volume only; the class is defined from its own entry alone.
    assert lightning.env == {
        "HF_HUB_OFFLINE": "1",
        MODELS_JSON_ENV: json.dumps(
            [{k: ENTRIES[0][k] for k in ("capacity", "model_id", "pipeline", "runner", "warm")}],
            separators=(",", ":"),
            sort_keys=True,
        ),
        REVISIONS_ENV: "{}",
    }
    # Every option of the class in one place: the configured ones and its whole environment.
    assert plan.gpu_class_options(lightning) == {
        **lightning.cls_options(),
        "env": {**plan.deploy_env, **lightning.env},
    }


def test_gpu_classes_run_with_settings_baked_into_the_plan_not_read_in_the_container(
    monkeypatch,
):
    deploy = Settings(limits=Limits(max_video_frames=9), compile_mode="max-autotune")
    plan = build_plan(
        merge_entries(parse_entries(ENTRIES)), "[]", deploy, ModalDeploySettings(), NOON
    )
    # The container's own environment says otherwise: the plan's settings do not read it.
    monkeypatch.setenv("ADAPTER_DEVICE", "cpu")
    monkeypatch.setenv("ADAPTER_MAX_VIDEO_FRAMES", "3")
    monkeypatch.setenv("MODEL_DIR", "/elsewhere")
    baked = gpu_settings(deploy)
    assert baked == plan.gpu_settings
    # CUDA named, never probed before a snapshot; the weights and compiled kernels on the Volume.
    assert (baked.device, baked.model_dir, baked.compile_cache_dir) == (
        "cuda",
        Path("/models"),
        Path("/compile-cache"),
    )
    assert (baked.limits.max_video_frames, baked.compile_mode) == (9, "max-autotune")
    # What modal_app.py reads again in each container, set explicitly by the deploy.
    assert plan.container_env["ADAPTER_MAX_VIDEO_FRAMES"] == "9"
    assert plan.container_env["ADAPTER_COMPILE_MODE"] == "max-autotune"


def test_timeouts_default_per_pipeline_and_bound_the_adapters_wait():
    plan = plan_of(ENTRIES)
    lightning, turbo, _ = plan.classes
    assert (lightning.run_timeout, turbo.run_timeout) == (120, 300)
    # Modal's timeout counts from the input's arrival in the container, where it may wait for
    # the runs ahead of it on the one model thread.
    assert (lightning.timeout, turbo.timeout) == (2 * 120, 300)
    assert lightning.call_wait_s == 600 + 240 + 60
    # The web function outlives the longest call it waits for.
    assert plan.web.timeout == max(c.call_wait_s for c in plan.classes) + 60


def test_a_streams_queue_partition_lives_as_long_as_the_wait_within_modals_day():
    lightning = plan_of(ENTRIES).classes[0]
    assert lightning.stream_ttl_s == lightning.call_wait_s == 900
    # A day-long run: the adapter waits longer than a day, Modal keeps a partition a day at
    # most (modal.Queue.put_many's largest partition_ttl).
    long = json.loads(json.dumps(ENTRIES[:1]))
    long[0]["runner"]["modal"]["timeout"] = 24 * 3600
    (day_long,) = plan_of(long).classes
    assert day_long.call_wait_s > 24 * 3600
    assert day_long.stream_ttl_s == 24 * 3600


def test_warm_schedule_sets_min_containers_by_utc_hour():
    plan = plan_of(ENTRIES, now=NOON)
    day = plan.classes[2]
    assert [day.min_containers_at(NOON.replace(hour=h)) for h in (7, 8, 19, 20, 21, 22, 1, 2)] == [
        0,
        2,
        2,
        0,
        0,
        1,
        1,
        0,
    ]
    # Defined with 0 whatever the deploy's hour; the scheduled function follows the clock.
    assert day.cls_options()["min_containers"] == 0
    assert plan_of(ENTRIES, now=NIGHT).classes[2].cls_options()["min_containers"] == 0
    assert plan.has_warm_schedule
    assert plan.warm_targets(NIGHT.replace(hour=23)) == {"TextToImage__acme_day_model": 1}
    assert day.cls_options()["max_containers"] == 2  # room for the largest window


def test_web_function_settings_and_environment():
    plan = plan_of(ENTRIES, limits=Limits(max_inference_steps=12), modal_app="my-runner")
    assert plan.app_name == "my-runner"
    assert plan.web.label == "my-runner"
    assert plan.web.function_options() == {
        "min_containers": 1,
        "max_containers": 1,
        "scaledown_window": 300,
        "timeout": plan.web.timeout,
        "cpu": 0.25,  # sized by bench/modal_web.py (ADAPTER_MODAL_WEB_CPU)
        "memory": 1024,  # ADAPTER_MODAL_WEB_MEMORY_MB
    }
    assert plan.web.env["ADAPTER_MAX_INFERENCE_STEPS"] == "12"
    # The GPU classes get the deploy's limits too: some are checked again there.
    limits = {key: value for key, value in plan.web.env.items() if key.startswith("ADAPTER_MAX_")}
    assert limits["ADAPTER_MAX_INFERENCE_STEPS"] == "12"
    assert plan.container_env == {
        MODELS_JSON_ENV: deployed_models_json(ENTRIES),
        REVISIONS_ENV: "{}",
        "ADAPTER_MODAL_APP": "my-runner",
        "ADAPTER_MODAL_WEB": "true",
        "ADAPTER_COMPILE_BACKEND": "inductor",
        "ADAPTER_COMPILE_MODE": "default",
        "ADAPTER_MAX_LOAD_ATTEMPTS": "3",
        **{k: v for k, v in limits.items() if k != "ADAPTER_MAX_LOAD_ATTEMPTS"},
    }
    cold = plan_of([ENTRIES[1]])
    assert cold.web.min_containers == 0  # nothing warm, nothing kept up


def test_the_deployed_adapter_gets_the_live_runner_door_settings(monkeypatch):
    monkeypatch.setenv("ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN", "true")
    monkeypatch.setenv("ADAPTER_LIVE_RUNNER_PATH_SECRET", "a-path-secret-of-24-chars")
    monkeypatch.setenv("ADAPTER_LIVE_RUNNER_RESULTS", "/only/on/this/machine.json")
    plan = plan_of(ENTRIES)
    env = plan.web.env
    assert env["ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN"] == "true"
    assert env["ADAPTER_LIVE_RUNNER_PATH_SECRET"] == "a-path-secret-of-24-chars"
    assert "ADAPTER_LIVE_RUNNER_RESULTS" not in env  # a local file: the deploy warns instead
    # Read back in the web container as the deploy set them.
    monkeypatch.delenv("ADAPTER_LIVE_RUNNER_RESULTS")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = Settings().live_runner
    assert again.serve_on_main and again.path_secret.get_secret_value().startswith("a-path")
    assert again.model_dump() == {**Settings().live_runner.model_dump(), "results": None}


def test_web_adapter_warmth_follows_the_warm_schedule_at_every_hour():
    # ENTRIES[2] is warm 8-20 and 22-2 only; the others are cold: the web follows it.
    scheduled = plan_of([ENTRIES[1], ENTRIES[2]])
    hours = {h: scheduled.web_min_containers_at(NOON.replace(hour=h)) for h in range(24)}
    assert [h for h, n in hours.items() if n] == [
        0,
        1,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        22,
        23,
    ]
    for h in (3, 7, 12, 20, 22):  # deployed at several hours: defined alike, cold until
        deployed = plan_of([ENTRIES[1], ENTRIES[2]], now=NOON.replace(hour=h))
        assert deployed.web.min_containers == 0  # the schedule's function sets the hour's
        assert deployed.has_warm_schedule  # so the cron updates it through the day
    # A model always warm keeps the web up at every hour; nothing warm, never.
    always = plan_of(ENTRIES[:2])
    assert always.web.min_containers == 1
    assert {always.web_min_containers_at(NOON.replace(hour=h)) for h in range(24)} == {1}
    cold = plan_of([ENTRIES[1]])
    assert {cold.web_min_containers_at(NOON.replace(hour=h)) for h in range(24)} == {0}


def test_deploys_at_different_hours_define_every_function_alike():
    at = [plan_of(ENTRIES, now=NOON.replace(hour=h)) for h in (3, 9, 12, 21, 23)]
    for plan in at[1:]:
        for mine, first in zip(plan.classes, at[0].classes, strict=True):
            assert plan.gpu_class_options(mine) == at[0].gpu_class_options(first)
            assert mine.concurrency_options() == first.concurrency_options()
        assert plan.web.function_options() == at[0].web.function_options()
        assert plan.web.env == at[0].web.env and plan.container_env == at[0].container_env


def test_the_warm_schedule_keeps_a_class_failing_past_the_bound_cold():
    plan = plan_of(ENTRIES, max_load_attempts=3)
    lightning, _, day = plan.classes
    assert plan.failed_marks == "livepeer-ai-runner-failed"
    # Its key names the class and its definition: pinned revisions, entries.
    pinned = replace(day, revisions=(("acme/day-model", "a" * 40),))
    repinned = replace(day, revisions=(("acme/day-model", "b" * 40),))
    assert len({day.failed_key, pinned.failed_key, repinned.failed_key}) == 3
    assert day.failed_key.startswith("TextToImage__acme_day_model@")
    assert replace(day, name="x").failed_key != day.failed_key
    assert replace(day, entries_json="[{}]").failed_key != day.failed_key
    warm_hour, quiet_hour = NOON, NIGHT
    assert plan.warm_targets(warm_hour) == {day.name: 2}
    for loads, want in ((0, 2), (2, 2), (3, 0), (7, 0)):
        marks = {day.failed_key: loads}
        assert plan.warm_targets(warm_hour, marks) == {day.name: want}
        assert plan.warm_targets(quiet_hour, marks) == {day.name: 0}
    # Marks of another definition (the weights since re-downloaded) do not count.
    assert plan.warm_targets(warm_hour, {repinned.failed_key: 9}) == {day.name: 2}
    assert plan.held_cold({day.failed_key: 3, lightning.failed_key: 1}) == {day.name}
    # The web stays up for the other warm classes, and goes with the last one held cold.
    assert plan.web_min_containers_at(warm_hour, {day.failed_key: 3}) == 1
    only_day = plan_of(ENTRIES[2:])
    (alone,) = only_day.classes
    assert only_day.web_min_containers_at(warm_hour) == 1
    assert only_day.web_min_containers_at(warm_hour, {alone.failed_key: 3}) == 0


def test_adapter_beside_the_orchestrator_deploys_no_web_function():
    models = merge_entries(parse_entries(ENTRIES))
    plan = build_plan(models, "[]", Settings(), ModalDeploySettings(web=False), NOON)
    assert plan.web is None
    assert plan.container_env["ADAPTER_MODAL_WEB"] == "false"
    assert len(plan.classes) == 3


def test_tokens_stay_on_the_operators_machine_and_containers_rebuild_the_same_plan():
    text = deployed_models_json(ENTRIES)
    assert "secret-1" not in text
    models, same_text = read_deploy_models({MODELS_JSON_ENV: text})
    assert same_text == text
    rebuilt = build_plan(models, text, Settings(), ModalDeploySettings(), NOON)

    def shape(plan):
        return [
            (c.name, c.cls_options(), c.max_concurrent_inputs, c.model.model_id)
            for c in plan.classes
        ]

    assert shape(rebuilt) == shape(plan_of(ENTRIES))
    assert all(c.model.tokens == () for c in rebuilt.classes)


def test_committed_sample_is_what_modal_app_deploys_by_default(tmp_path):
    models, text = read_deploy_models({})
    assert text == deployed_models_json(json.loads(SAMPLE_MODELS_FILE.read_text()))
    warm = [c for c in plan_classes(models, NOON) if c.model.warm]
    assert warm and all(c.min_containers >= 1 for c in warm)
    path = tmp_path / "aiModels.json"
    path.write_text(json.dumps([ENTRIES[1]]))
    models, _ = read_deploy_models({"ADAPTER_MODELS_CONFIG": str(path)})
    assert [m.model_id for m in models] == ["stabilityai/sdxl-turbo"]


@pytest.mark.parametrize(
    ("modal", "message"),
    [
        ({"min_containers": 0}, "runner.modal.min_containers': the entry is warm"),
        ({"min_containers": 3, "max_containers": 2}, "max_containers': 2 is below the 3"),
    ],
)
def test_plan_refuses_settings_that_break_warm(modal, message):
    entry = {
        "pipeline": "text-to-image",
        "model_id": "a/b",
        "warm": True,
        "runner": {"modal": modal},
    }
    with pytest.raises(ConfigError, match=message):
        plan_of([entry])


@pytest.mark.parametrize(
    ("modal", "field"),
    [
        ({"scaledown_window": 1}, "runner.modal.scaledown_window"),
        ({"timeout": 90000}, "runner.modal.timeout"),
        ({"gpu": "an L4 please"}, "runner.modal.gpu"),
        ({"warm_schedule": [{"hours_utc": "8-8"}]}, "runner.modal.warm_schedule.0.hours_utc"),
        ({"keep_warm": 1}, "runner.modal.keep_warm"),
    ],
)
def test_bad_modal_settings_fail_naming_the_field(modal, field):
    entry = {"pipeline": "text-to-image", "model_id": "a/b", "runner": {"modal": modal}}
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        parse_entries([entry])


def test_pipeline_without_glue_cannot_be_planned():
    entry = {"pipeline": "live-video-to-video", "model_id": "comfyui"}
    with pytest.raises(ConfigError, match="has no implementation to run on Modal"):
        plan_of([entry])


def test_class_names_are_identifiers_within_modals_limit_and_never_collide():
    long_id = "some-organisation/" + "a-very-long-model-name" * 4
    name = class_name(Pipeline.IMAGE_TO_VIDEO, long_id)
    assert len(name) <= 64 and name.isidentifier() and name.startswith("ImageToVideo__")
    assert name != class_name(Pipeline.IMAGE_TO_VIDEO, long_id + "-v2")
    clash = [
        {"pipeline": "text-to-image", "model_id": "a/b-c"},
        {"pipeline": "text-to-image", "model_id": "a/b_c"},
    ]
    with pytest.raises(ConfigError, match="map to the same Modal class"):
        plan_of(clash)


def test_image_installs_exactly_the_projects_dependencies():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert list(IMAGE_PACKAGES) == pyproject["project"]["dependencies"]


def test_download_targets_are_the_models_and_checkers_without_their_own_files():
    entries = [
        {
            "pipeline": "text-to-image",
            "model_id": "org/fp16-model",
            "runner": {"safety_checker": "CompVis/stable-diffusion-safety-checker"},
        },
        {
            "pipeline": "text-to-image",
            "model_id": "org/bf16-model",
            "runner": {"torch_dtype": "bfloat16"},
        },
        {
            "pipeline": "text-to-image",
            "model_id": "org/own-files",
            "runner": {"model_path": "/models/own"},
        },
    ]
    models = merge_entries(parse_entries(entries))
    targets = download_targets(models)
    assert [(t.repo_id, t.prefer_fp16) for t in targets] == [
        ("org/fp16-model", True),
        ("CompVis/stable-diffusion-safety-checker", False),
        ("org/bf16-model", False),
    ]


SDXL_REPO = [
    ".gitattributes",
    "README.md",
    "01.png",
    "model_index.json",
    "sd_xl_base_1.0.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_flax_model.msgpack",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "vae_decoder/model.onnx",
]


def test_download_takes_only_the_weights_a_pipeline_loads():
    assert select_files(SDXL_REPO, prefer_fp16=True) == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.fp16.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        # vae has no fp16 variant: its full weights are the only ones.
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    full = select_files(SDXL_REPO, prefer_fp16=False)
    assert "unet/diffusion_pytorch_model.safetensors" in full
    assert not any(name.endswith(".fp16.safetensors") for name in full)
    llm = [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "tokenizer.json",
        "original/consolidated.00.pth",
    ]
    assert select_files(llm, prefer_fp16=True) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    # A repo with .bin weights only keeps them.
    assert select_files(["config.json", "pytorch_model.bin"], prefer_fp16=True) == [
        "config.json",
        "pytorch_model.bin",
    ]


def test_text_to_video_gets_its_gpu_class_timeout_and_download():
    entry = {
        "pipeline": "text-to-video",
        "model_id": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "capacity": 1,
    }
    (plan,) = plan_of([entry]).classes
    assert plan.name == "TextToVideo__Wan_AI_Wan2_1_T2V_1_3B_Diffusers"
    assert plan.name == class_name(Pipeline.TEXT_TO_VIDEO, entry["model_id"])
    assert (plan.gpu, plan.run_timeout) == ("L40S", 1800)
    assert [t.repo_id for t in download_targets((plan.model,))] == [entry["model_id"]]
