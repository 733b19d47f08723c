"""Optimization flags: checked when aiModels.json loads; DEEPCACHE and SFAST served over HTTP.

The HTTP tests serve one tiny SD pipeline twice, with and without the flag, and compare the
images of one seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

import numpy as np
import pytest
import torch
from diffusers.models.transformers.transformer_2d import Transformer2DModel

from adapter.settings import Settings
from contract.aimodels import ServedModel, merge_entries, parse_entries
from contract.errors import ConfigError
from contract.model_families import is_few_step_distilled
from contract.optimization_flags import COMPILE_MODES, OptimizationFlags, parse_optimization_flags
from functions.speed.compile import COMPILE_BACKENDS, compile_pipeline
from functions.speed.deep_cache import enable_deep_cache
from functions.text_to_image import ModelProfile, profile_for
from tests.support.apps import model_entry, running_client, sd_entry
from tests.support.images import pixels

DIFFUSION = ["text-to-image", "image-to-image", "image-to-video", "upscale"]
DISTILLED_IDS = [
    "stabilityai/sdxl-turbo",
    "stabilityai/sd-turbo",
    "ByteDance/SDXL-Lightning",
    "SG161222/RealVisXL_V4.0_Lightning",
    "someone/SDXL_lightning-2step",
]
FULL_STEP_IDS = ["runwayml/stable-diffusion-v1-5", "stabilityai/stable-diffusion-xl-base-1.0"]


def served(
    flags: dict, pipeline: str = "text-to-image", model_id: str = "test/tiny-sd", **fields
) -> ServedModel:
    entry = {"pipeline": pipeline, "model_id": model_id, "optimization_flags": flags, **fields}
    return merge_entries(parse_entries([entry]))[0]


def accepted(flags: dict, **fields) -> OptimizationFlags:
    """What the served model's flags ask for, once aiModels.json has accepted them."""
    model = served(flags, **fields)
    return parse_optimization_flags(
        model.optimization_flags, pipeline=model.pipeline.value, model_id=model.model_id
    )


def config_error(flags: dict, **fields) -> str:
    with pytest.raises(ConfigError) as info:
        served(flags, **fields)
    return str(info.value)


# --- checks at config load -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (" TRUE ", True),
        (False, False),
        ("false", False),
        ("False", False),
    ],
)
def test_json_bools_and_the_strings_go_livepeer_makes_of_them_are_read(value, expected):
    model = served({"DEEPCACHE": value, "SFAST_WARMUP": value})
    flags = parse_optimization_flags(
        model.optimization_flags, pipeline="text-to-image", model_id=model.model_id
    )
    assert flags.deepcache is expected
    assert flags.sfast_warmup is expected
    assert flags.sfast is False


@pytest.mark.parametrize("value", ["yes", "1", "", "on", 1, 0.0])
def test_other_values_are_refused_rather_than_read_as_false(value):
    message = config_error({"SFAST": value})
    assert "entries [0] (text-to-image 'test/tiny-sd')" in message
    assert "field 'optimization_flags.SFAST'" in message
    assert "expected true or false" in message


@pytest.mark.parametrize("compile_flag", ["SFAST", "TORCH_COMPILE"])
def test_sfast_and_deepcache_exclude_each_other(compile_flag):
    message = config_error({compile_flag: "true", "DEEPCACHE": True})
    assert "'test/tiny-sd'" in message
    assert "field 'optimization_flags.DEEPCACHE'" in message
    assert "mutually exclusive" in message
    # One of them switched off explicitly is fine.
    assert accepted({compile_flag: "true", "DEEPCACHE": "false"}) == OptimizationFlags(sfast=True)
    assert accepted({compile_flag: False, "DEEPCACHE": "true"}) == OptimizationFlags(deepcache=True)


@pytest.mark.parametrize("model_id", DISTILLED_IDS)
@pytest.mark.parametrize("pipeline", ["text-to-image", "image-to-image", "upscale"])
def test_deepcache_is_refused_at_start_on_turbo_and_lightning_models(model_id, pipeline):
    message = config_error({"DEEPCACHE": "true"}, pipeline=pipeline, model_id=model_id)
    assert repr(model_id) in message
    assert "field 'optimization_flags.DEEPCACHE'" in message
    assert "Turbo/Lightning" in message
    flags = {"DEEPCACHE": "false", "SFAST": "true"}
    assert accepted(flags, pipeline=pipeline, model_id=model_id) == OptimizationFlags(sfast=True)


@pytest.mark.parametrize("model_id", FULL_STEP_IDS)
def test_deepcache_is_accepted_on_full_step_models(model_id):
    assert accepted({"DEEPCACHE": "true"}, model_id=model_id) == OptimizationFlags(deepcache=True)


@pytest.mark.parametrize("model_id", DISTILLED_IDS + FULL_STEP_IDS)
def test_the_turbo_lightning_rule_is_the_one_text_to_image_applies(model_id):
    assert is_few_step_distilled(model_id) == (profile_for(model_id) != ModelProfile())


@pytest.mark.parametrize(("name", "suggestion"), [("DEEP_CACHE", "DEEPCACHE"), ("sfast", "SFAST")])
def test_an_unknown_flag_is_refused_with_a_suggestion(name, suggestion):
    message = config_error({name: "true"})
    assert f"field 'optimization_flags.{name}'" in message
    assert "unknown optimization flag" in message
    assert f"Did you mean {suggestion!r}?" in message


def test_runner_switches_without_effect_here_are_accepted_with_a_warning(caplog):
    model = served({"SAFETY_CHECKER_DEVICE": "cpu", "USE_8BIT": "true"})
    assert model.optimization_flags == {"SAFETY_CHECKER_DEVICE": "cpu", "USE_8BIT": "true"}
    assert "['SAFETY_CHECKER_DEVICE', 'USE_8BIT'] have no effect here" in caplog.text


@pytest.mark.parametrize("flag", ["SFAST", "TORCH_COMPILE", "DEEPCACHE"])
@pytest.mark.parametrize("pipeline", ["llm", "audio-to-text", "image-to-text"])
def test_diffusion_flags_are_refused_on_other_pipelines(flag, pipeline):
    message = config_error({flag: "true"}, pipeline=pipeline)
    assert f"field 'optimization_flags.{flag}'" in message
    assert f"applies to {', '.join(sorted(DIFFUSION))} only, not to {pipeline}" in message
    assert accepted({flag: "false"}, pipeline=pipeline) == OptimizationFlags()  # harmless


@pytest.mark.parametrize("pipeline", DIFFUSION)
def test_diffusion_flags_are_accepted_on_the_four_unet_pipelines(pipeline):
    sfast = accepted({"SFAST": "true", "SFAST_WARMUP": "false"}, pipeline=pipeline)
    assert sfast == OptimizationFlags(sfast=True, sfast_warmup=False)
    assert accepted({"DEEPCACHE": True}, pipeline=pipeline) == OptimizationFlags(deepcache=True)


def test_bfloat16_chooses_the_dtype_and_must_not_contradict_runner_torch_dtype():
    assert served({"BFLOAT16": "true"}).runner.torch_dtype == "bfloat16"
    assert served({"BFLOAT16": "false"}).runner.torch_dtype == "auto"
    assert served({"BFLOAT16": True}, pipeline="llm").runner.torch_dtype == "bfloat16"
    message = config_error({"BFLOAT16": "true"}, runner={"torch_dtype": "float16"})
    assert "field 'optimization_flags.BFLOAT16'" in message
    assert "runner.torch_dtype 'float16'" in message


def test_entries_of_one_model_must_agree_on_a_flag():
    entry = {"pipeline": "text-to-image", "model_id": "test/tiny-sd", "gateway": "a"}
    same = [
        {**entry, "optimization_flags": {"SFAST": "true"}},
        {**entry, "gateway": "b", "optimization_flags": {"SFAST": True}},
    ]
    assert merge_entries(parse_entries(same))[0].optimization_flags == {"SFAST": True}
    different = [same[0], {**same[1], "optimization_flags": {"SFAST": "false"}}]
    with pytest.raises(ConfigError, match=r"'optimization_flags\.SFAST': entries of one model"):
        merge_entries(parse_entries(different))


def test_compile_settings_offer_the_compiler_choices():
    assert get_args(Settings.model_fields["compile_mode"].annotation) == COMPILE_MODES
    assert get_args(Settings.model_fields["compile_backend"].annotation) == COMPILE_BACKENDS


def test_a_pipeline_without_a_unet_is_refused_at_load():
    class TransformerPipeline:
        transformer = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match="DEEPCACHE needs a UNet pipeline"):
        enable_deep_cache(TransformerPipeline())
    with pytest.raises(ValueError, match="SFAST needs a UNet or transformer"):
        compile_pipeline(object())


# --- DEEPCACHE over HTTP ---------------------------------------------------------------------


@contextmanager
def counting_calls(module_type: type[torch.nn.Module]) -> Iterator[list[int]]:
    """Count the forward calls of every module of `module_type`, in any thread."""
    calls: list[int] = []

    def count(module: torch.nn.Module, _args: tuple) -> None:
        if isinstance(module, module_type):
            calls.append(1)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


def generate(client, model_id: str, **fields) -> np.ndarray:
    body = {"prompt": "a lighthouse at dusk", "model_id": model_id, **fields}
    response = client.post("/text-to-image", json=body)
    assert response.status_code == 200, response.text
    return pixels(response.json()["images"][0]["url"])


@pytest.fixture
def deepcache_client(app_factory, tiny_sd):
    entries = [
        sd_entry(tiny_sd, model_id="test/plain"),
        sd_entry(tiny_sd, model_id="test/deepcache", optimization_flags={"DEEPCACHE": "true"}),
    ]
    with running_client(app_factory(entries)) as client:
        yield client


def test_deepcache_skips_the_deep_blocks_and_stays_close_to_the_unflagged_image(
    deepcache_client,
):
    request = {"width": 64, "height": 64, "num_inference_steps": 6, "seed": 11}
    # The tiny UNet's six attention transformers all sit in its deep blocks.
    with counting_calls(Transformer2DModel) as plain_calls:
        plain = generate(deepcache_client, "test/plain", **request)
    with counting_calls(Transformer2DModel) as cached_calls:
        cached = generate(deepcache_client, "test/deepcache", **request)
    other_seed = generate(deepcache_client, "test/plain", **{**request, "seed": 12})

    # Six steps with interval 3: the whole UNet runs on steps 0 and 3 only.
    assert len(plain_calls) == 6 * 6
    assert len(cached_calls) == 2 * 6
    # Close to the unflagged image (measured: mean 1.1, max 7.4 of 255), far closer than
    # another seed (mean about 49), yet not the same: the cache changed the computation.
    difference = np.abs(cached - plain)
    assert difference.mean() <= 3.0
    assert difference.max() <= 24
    assert difference.mean() < 0.1 * np.abs(other_seed - plain).mean()
    assert not np.array_equal(cached, plain)


def test_deepcache_carries_nothing_over_from_one_request_to_the_next(deepcache_client):
    request = {"width": 64, "height": 64, "num_inference_steps": 6, "seed": 7}
    first = generate(deepcache_client, "test/deepcache", **request)
    generate(deepcache_client, "test/deepcache", width=48, height=64, num_inference_steps=4, seed=8)
    generate(deepcache_client, "test/deepcache", **{**request, "seed": 9})
    assert np.array_equal(generate(deepcache_client, "test/deepcache", **request), first)


# --- SFAST over HTTP -------------------------------------------------------------------------

# Inductor generates C++ kernels on the CPU; for the tiny UNet and VAE that took 1 to 3 minutes
# on this project's 2-core machines (the same pipeline's graph capture takes about 5 s). Served
# models compile with Triton on CUDA instead, so the CPU run checks torch more than our code.
RUN_INDUCTOR = os.environ.get("ADAPTER_TEST_INDUCTOR") == "1"
BACKENDS = [
    "eager",
    pytest.param(
        "inductor",
        marks=pytest.mark.skipif(
            not RUN_INDUCTOR,
            reason="inductor's CPU code generation takes minutes on 2 cores; "
            "ADAPTER_TEST_INDUCTOR=1 runs it",
        ),
    ),
]


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.fixture
def fresh_compiler(monkeypatch) -> Iterator[None]:
    """Forget graphs compiled by earlier tests (they are shared by models of one architecture);
    restore the inductor cache location the test changes."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sfast_compiles_and_warms_up_at_load_and_serves_the_same_image(
    backend, fresh_compiler, app_factory, tiny_sd, tmp_path
):
    cache = tmp_path / "compile-cache"
    entries = [
        sd_entry(tiny_sd, model_id="test/plain"),
        sd_entry(tiny_sd, model_id="test/sfast", optimization_flags={"SFAST": "true"}),
    ]
    before_load = compiled_graphs()
    app = app_factory(entries, compile_backend=backend, compile_cache_dir=cache)
    with running_client(app) as client:
        after_load = compiled_graphs()
        # At the contract's default size, which the warm-up used: nothing left to compile.
        request = {"seed": 5, "num_inference_steps": 2}
        compiled = generate(client, "test/sfast", **request)
        assert compiled_graphs() == after_load
        plain = generate(client, "test/plain", **request)

    assert after_load > before_load  # the warm-up at load compiled the UNet and VAE decoder
    assert compiled.shape == (576, 1024, 3)
    # Compiled kernels, channels-last and fused QKV change only the rounding.
    assert np.abs(compiled - plain).max() <= 2
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(cache.resolve())
    if backend == "inductor":
        assert any(cache.rglob("*.so")), "inductor kept no kernels in the configured cache"


@pytest.mark.parametrize(("warmup_flag", "warmups"), [("true", 1), ("false", 0), (None, 1)])
def test_the_warmup_runs_after_compiling_unless_sfast_warmup_is_false(
    warmup_flag, warmups, fresh_compiler, tiny_sd
):
    from diffusers import StableDiffusionPipeline

    from functions.speed.optimize import apply_optimization_flags

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    flags = {"SFAST": "true"} | ({} if warmup_flag is None else {"SFAST_WARMUP": warmup_flag})
    calls: list[bool] = []
    # nn.Module.compile keeps the compiled call in `_compiled_call_impl` (torch 2.13).
    done = apply_optimization_flags(
        pipe,
        parse_optimization_flags(flags, pipeline="text-to-image", model_id="test/tiny-sd"),
        model_id="test/tiny-sd",
        pipeline="text-to-image",
        compile_backend="eager",
        warmup=lambda: calls.append(pipe.unet._compiled_call_impl is not None),
    )
    assert calls == [True] * warmups  # called once, and only after the UNet was compiled
    assert "compiled UNet2DConditionModel (eager)" in done
    assert ("warmed up" in done) == bool(warmups)


def test_deepcache_applies_to_image_to_image_too(app_factory, tiny_sd):
    from tests.support.livepeer_multipart import png_bytes, post_image

    entries = [
        model_entry("image-to-image", tiny_sd, "test/i2i-plain"),
        model_entry(
            "image-to-image", tiny_sd, "test/i2i-deepcache", optimization_flags={"DEEPCACHE": True}
        ),
    ]
    fields = {"prompt": "x", "num_inference_steps": 6, "strength": 1.0, "seed": 3}
    with running_client(app_factory(entries)) as client:
        calls = {}
        for model_id in ("test/i2i-plain", "test/i2i-deepcache"):
            with counting_calls(Transformer2DModel) as counted:
                response = post_image(
                    client, "/image-to-image", png_bytes(64, 64), model_id=model_id, **fields
                )
            assert response.status_code == 200, response.text
            calls[model_id] = len(counted)
    assert calls == {"test/i2i-plain": 6 * 6, "test/i2i-deepcache": 2 * 6}
