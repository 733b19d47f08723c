"""The fast path on the CPU: everything but the CUDA graph capture itself, which needs a GPU
(bench/ checks it there). The pipelines are the tiny real SDXL of the conftest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapter.pipelines.text_to_image import fast_path_for
from contract.aimodels import merge_entries, parse_entries
from functions.speed import fast_path as fast_path_module
from functions.speed.compile_cache import use_compile_cache
from functions.speed.cuda_graphs import GraphedCall, describe_call, graph_method, graphed_calls
from functions.speed.fast_path import FastPathOptions, default_fast_path, images_from_tensor
from functions.text_to_image import TextToImage, profile_for


def generate(handle: TextToImage, seed: int) -> np.ndarray:
    result = handle.generate(
        prompt="a red fox", height=64, width=64, num_inference_steps=1, seed=seed
    )
    return np.asarray(result.images[0]).astype(np.int16)


def load_fast(folder, options=None, **load) -> TextToImage:
    handle = TextToImage.load(folder, **load)
    handle.use_fast_path(options or FastPathOptions())
    return handle


@pytest.fixture(scope="module")
def stock_and_fast(tiny_sdxl):
    load = dict(
        device=torch.device("cpu"), dtype=torch.float32, profile=profile_for("test/sdxl-turbo")
    )
    return TextToImage.load(tiny_sdxl, **load), load_fast(tiny_sdxl, **load)


def test_same_pixels_as_stock_diffusers(stock_and_fast):
    stock, fast = stock_and_fast
    for seed in (0, 7):
        np.testing.assert_array_equal(generate(fast, seed), generate(stock, seed))
    # Different seeds do differ: the comparison above is not vacuous.
    assert np.abs(generate(stock, 0) - generate(stock, 7)).max() > 0


def test_pipeline_keeps_its_class_name_and_modules(stock_and_fast):
    stock, fast = stock_and_fast
    assert type(fast.pipe).__name__ == type(stock.pipe).__name__
    assert isinstance(fast.pipe, type(stock.pipe))
    assert fast.pipe.unet.config == stock.pipe.unet.config
    assert set(graphed_calls(fast.pipe.unet)) == {"forward"}
    assert set(graphed_calls(fast.pipe.vae)) == {"decode"}
    assert set(graphed_calls(fast.pipe.text_encoder_2)) == {"forward"}
    # On the CPU nothing is captured: every call ran eagerly.
    unet_graphs = graphed_calls(fast.pipe.unet)["forward"].stats
    assert unet_graphs.captured == 0 and unet_graphs.eager > 0


def test_device_look_ups_are_pinned_until_moved(tiny_sdxl):
    from diffusers.pipelines.stable_diffusion_xl import pipeline_stable_diffusion_xl as module

    pipe = load_fast(tiny_sdxl, device=torch.device("cpu"), dtype=torch.float32).pipe
    assert pipe.__dict__["_fast_path_device"] == torch.device("cpu")
    assert pipe._execution_device == torch.device("cpu")
    assert module.get_module_execution_device(pipe.vae) == torch.device("cpu")
    # An unpinned module is answered by diffusers' own look-up.
    assert module.get_module_execution_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    pipe.to(torch.device("cpu"))
    assert "_fast_path_device" not in pipe.__dict__
    assert "_fast_path_device" not in pipe.vae.__dict__
    assert pipe._execution_device == torch.device("cpu")


def test_float16_vae_stays_float32_and_output_differs_only_by_rounding(tiny_sdxl):
    load = dict(
        device=torch.device("cpu"), dtype=torch.float16, profile=profile_for("test/sdxl-turbo")
    )
    stock = TextToImage.load(tiny_sdxl, **load)
    fast = load_fast(tiny_sdxl, **load)
    assert fast.pipe.vae.dtype == torch.float32
    assert stock.pipe.vae.dtype == torch.float16
    difference = np.abs(generate(fast, 3) - generate(stock, 3))
    # The latents are scaled in float16 before the cast rather than after: rounding only.
    assert difference.max() <= 2
    assert stock.pipe.vae.dtype == torch.float16  # stock cast it back after its decode


def test_pixels_rounded_like_diffusers():
    from diffusers.image_processor import VaeImageProcessor

    images = torch.rand(2, 3, 17, 9)
    images[0, 0, 0, :4] = torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, 1.0])
    ours = [np.asarray(image) for image in images_from_tensor(images)]
    theirs = [
        np.asarray(image)
        for image in VaeImageProcessor.numpy_to_pil(VaeImageProcessor.pt_to_numpy(images))
    ]
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, reference)
    grey = images_from_tensor(images[:, :1])
    assert grey[0].mode == "L" and grey[0].size == (9, 17)


def test_call_signatures():
    x = torch.zeros(2, 3)
    key, leaves, devices = describe_call((x,), {"scale": 2, "extra": {"y": x}})
    assert devices == {torch.device("cpu")}
    assert len(leaves) == 3
    same = describe_call((torch.ones(2, 3),), {"scale": 2, "extra": {"y": torch.ones(2, 3)}})
    assert same is not None and same[0] == key
    for other in (
        ((torch.zeros(2, 4),), {"scale": 2, "extra": {"y": x}}),
        ((x,), {"scale": 3, "extra": {"y": x}}),
        ((x.half(),), {"scale": 2, "extra": {"y": x}}),
        ((x,), {"scale": 2, "extra": {"z": x}}),
    ):
        described = describe_call(*other)
        assert described is not None and described[0] != key
    assert describe_call(([1, 2],), {"unhashable": [x]}) is not None  # lists are flattened
    assert describe_call((x,), {"callback": {1, 2}}) is None  # a set cannot be a graph constant
    assert describe_call((torch.zeros(2, requires_grad=True),), {}) is None
    with torch.inference_mode():
        assert describe_call((x,), {"scale": 2, "extra": {"y": x}})[0] != key


def test_graphed_call_runs_cpu_calls_eagerly_and_drops_graphs_when_moved():
    module = torch.nn.Linear(4, 2)
    expected = module(torch.ones(1, 4))
    graphed = graph_method(module, "forward")
    assert isinstance(module.forward, GraphedCall)
    assert graph_method(module, "forward") is graphed  # applied once
    torch.testing.assert_close(module(torch.ones(1, 4)), expected)
    assert graphed.stats.eager == 1 and graphed.stats.captured == 0
    module.to(torch.float64)
    assert graphed.stats.invalidated == 1
    assert module(torch.ones(1, 4, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedCall(module, "linear", max_graphs=0)
    with pytest.raises(ValueError, match="eager_calls_first"):
        GraphedCall(module, "linear", eager_calls_first=-1)


def test_options_by_device_and_entry():
    assert default_fast_path(torch.device("cpu")) is None
    assert default_fast_path(torch.device("cuda")) == FastPathOptions()

    def served(**fields):
        entry = {"pipeline": "text-to-image", "model_id": "org/m", **fields}
        return merge_entries(parse_entries([entry]))[0]

    cuda = torch.device("cuda")
    assert fast_path_for(served(), torch.device("cpu")) is None
    assert fast_path_for(served(), cuda) == FastPathOptions()
    assert fast_path_for(served(runner={"fast_path": False}), cuda) is None
    compiled = fast_path_for(served(optimization_flags={"SFAST": "true"}), cuda)
    assert compiled is not None and not compiled.cuda_graphs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resident_vae_dtype": "float16"}, "resident_vae_dtype"),
        ({"compile_mode": "fastest"}, "compile_mode"),
        ({"max_graphs_per_module": 0}, "max_graphs_per_module"),
    ],
)
def test_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        FastPathOptions(**options)


def test_bfloat16_vae_decodes_with_float32_range(tiny_sdxl):
    handle = load_fast(
        tiny_sdxl,
        FastPathOptions(resident_vae_dtype="bfloat16"),
        device=torch.device("cpu"),
        dtype=torch.float16,
    )
    assert handle.pipe.vae.dtype == torch.bfloat16
    pixels = generate(handle, 3)
    assert pixels.shape == (64, 64, 3) and pixels.std() > 0


def test_compile_cache_goes_where_asked(tmp_path, monkeypatch):
    for name in (
        "TORCHINDUCTOR_CACHE_DIR",
        "TORCHINDUCTOR_FX_GRAPH_CACHE",
        "TORCHINDUCTOR_AUTOGRAD_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)
    use_compile_cache(tmp_path / "inductor")
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "inductor").resolve())
    assert (tmp_path / "inductor").is_dir()
    assert os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "1"
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    assert cache_dir() == str((tmp_path / "inductor").resolve())


def test_pipelines_listed_as_upcasting_exist():
    import diffusers

    for name in fast_path_module.GRAPH_SAFE_VAE_PIPELINES:
        assert hasattr(diffusers, name), name
