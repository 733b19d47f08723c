"""aiModels.json as the adapter's configuration: fields, merging, and errors that name the
entry and the field, raised at start."""

from __future__ import annotations

import json

import pytest

from contract.aimodels import load_models_file, merge_entries, parse_entries
from contract.errors import ConfigError


def write(tmp_path, content):
    path = tmp_path / "aiModels.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_an_orchestrators_file_is_read_with_our_settings_beside_its_fields(tmp_path):
    path = write(
        tmp_path,
        [
            {
                "pipeline": "text-to-image",
                "model_id": "ByteDance/SDXL-Lightning",
                "warm": True,
                "capacity": 3,
                "url": "http://adapter:8000",
                "token": "t0k",
                "price_per_unit": 4768371,
                "pixels_per_unit": 1,
                "currency": "wei",
                "optimization_flags": {"SFAST": True},
                "runner": {"max_queue": 5, "default": True},
            },
            {"pipeline": "text-to-image", "model_id": "stabilityai/sd-turbo"},
        ],
    )
    lightning, turbo = load_models_file(path)
    assert (lightning.key, lightning.warm, lightning.capacity, lightning.tokens) == (
        "text-to-image/ByteDance/SDXL-Lightning",
        True,
        3,
        ("t0k",),
    )
    assert (lightning.max_in_flight, lightning.max_queue) == (3, 5)
    assert lightning.optimization_flags == {"SFAST": True}
    # go-livepeer counts an external container's capacity 0 (absent) as 1.
    assert (turbo.capacity, turbo.max_in_flight, turbo.max_queue, turbo.warm) == (1, 1, 1, False)


def test_entries_of_one_model_add_their_capacity_up_as_go_livepeer_does():
    entries = parse_entries(
        [
            {"pipeline": "llm", "model_id": "m", "capacity": 2, "gateway": "0xabc"},
            {"pipeline": "llm", "model_id": "m", "capacity": 3},
        ]
    )
    (model,) = merge_entries(entries)
    assert model.capacity == 5


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [{"pipeline": "text-to-image", "model_id": "a", "capacity": "2"}],
            "entry 0 (text-to-image 'a'): field 'capacity'",
        ),
        ([{"pipeline": "txt2img", "model_id": "a"}], "entry 0 (txt2img 'a'): field 'pipeline'"),
        (
            [{"pipeline": "llm", "model_id": "ok"}, {"pipeline": "llm"}],
            "entry 1 (llm '?'): field 'model_id'",
        ),
        (
            [{"pipeline": "llm", "model_id": "a", "price_per_unit": "0.5e-2USD"}],
            "field 'price_per_unit'",
        ),
        (
            [{"pipeline": "llm", "model_id": "a", "runner": {"max_queue": -1}}],
            "field 'runner.max_queue'",
        ),
        (
            [{"pipeline": "llm", "model_id": "a", "runner": {"gpu_count": 2}}],
            "field 'runner.gpu_count'",
        ),
        (
            [
                {"pipeline": "llm", "model_id": "a", "warm": True},
                {"pipeline": "llm", "model_id": "a", "warm": False},
            ],
            "field 'warm'",
        ),
        (
            [
                {"pipeline": "llm", "model_id": "a", "runner": {"default": True}},
                {"pipeline": "llm", "model_id": "b", "runner": {"default": True}},
            ],
            "field 'runner.default'",
        ),
        ({"pipeline": "llm"}, "expected a JSON array"),
        ([], "holds no model entries"),
        (["llm:a:true"], "entry 0: expected a JSON object"),
    ],
)
def test_bad_configuration_fails_naming_the_entry_and_field(tmp_path, entries, expected):
    with pytest.raises(ConfigError) as error:
        load_models_file(write(tmp_path, entries))
    assert expected in str(error.value)
    assert str(tmp_path / "aiModels.json") in str(error.value)


def test_unreadable_or_malformed_files_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_models_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="not valid JSON at line 1 column 3"):
        load_models_file(write(tmp_path, "[{,]"))


def test_the_app_refuses_to_start_on_a_model_it_cannot_serve(tmp_path):
    from tests.support.apps import make_app

    with pytest.raises(ConfigError, match="field 'pipeline': 'live-video-to-video'"):
        make_app(tmp_path, [{"pipeline": "live-video-to-video", "model_id": "x"}])


def test_the_entrypoint_reads_the_file_named_by_the_environment(tmp_path, monkeypatch):
    from adapter.settings import Settings

    path = write(tmp_path, [{"pipeline": "text-to-image", "model_id": "a"}])
    monkeypatch.setenv("ADAPTER_MODELS_CONFIG", str(path))
    monkeypatch.setenv("ADAPTER_MAX_PIXELS_PER_IMAGE", "4096")
    settings = Settings()
    assert settings.models_config == path
    assert settings.limits.max_pixels_per_image == 4096
