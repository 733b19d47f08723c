"""Cases (a), (b), (c) and the optional (u): stock and ours side by side on one device."""

from __future__ import annotations

import base64
import gc
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench import flops, paths
from bench.architectures import ensure_model
from bench.timing import interleaved
from functions.speed.fast_path import FastPathOptions


@dataclass(frozen=True)
class DiffusionCase:
    key: str
    title: str
    architecture: str
    pipeline: str  # the runner pipeline, for the seconds-per-job file
    model_id: str
    target: float | None  # speed-up of ours over stock asked for (on an H100)
    full: dict[str, int]
    tiny: dict[str, int]
    runs: int  # timed runs of each path (full size); tiny runs use fewer
    warmup: int

    def params(self, tiny: bool) -> dict[str, int]:
        return self.tiny if tiny else self.full


CASES: dict[str, DiffusionCase] = {
    "a": DiffusionCase(
        "a",
        "SDXL-Turbo text-to-image 512x512, 1 step, no CFG",
        "sdxl",
        "text-to-image",
        "stabilityai/sdxl-turbo",
        3.0,
        full={"width": 512, "height": 512, "steps": 1},
        tiny={"width": 64, "height": 64, "steps": 1},
        runs=20,
        warmup=3,
    ),
    "b": DiffusionCase(
        "b",
        "SDXL-Lightning text-to-image 1024x1024, 4 steps",
        "sdxl",
        "text-to-image",
        "ByteDance/SDXL-Lightning",
        2.0,
        full={"width": 1024, "height": 1024, "steps": 4},
        tiny={"width": 96, "height": 96, "steps": 4},
        runs=10,
        warmup=2,
    ),
    "c": DiffusionCase(
        "c",
        "SVD-xt image-to-video 576x1024, 25 frames, 25 steps",
        "svd-xt",
        "image-to-video",
        "stabilityai/stable-video-diffusion-img2vid-xt",
        1.5,
        full={"width": 1024, "height": 576, "frames": 25, "steps": 25},
        tiny={"width": 64, "height": 64, "frames": 3, "steps": 2},
        runs=3,
        warmup=2,
    ),
    "u": DiffusionCase(
        "u",
        "SD x4 upscaler 256x256 -> 1024x1024, 75 steps",
        "x4-upscaler",
        "upscale",
        "stabilityai/stable-diffusion-x4-upscaler",
        None,
        full={"input": 256, "steps": 75},
        tiny={"input": 32, "steps": 2},
        runs=3,
        warmup=1,
    ),
}


def decode_data_url(url: str) -> np.ndarray:
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def pixel_difference(first: list[str], second: list[str]) -> dict[str, float]:
    """Max and mean absolute difference, in 0-255 levels, over every pixel of the outputs."""
    a = np.stack([decode_data_url(url) for url in first])
    b = np.stack([decode_data_url(url) for url in second])
    difference = np.abs(a - b)
    return {"max": float(difference.max()), "mean": float(difference.mean())}


def _loaders(
    case: DiffusionCase,
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    params: dict[str, int],
    variants: dict[str, FastPathOptions],
) -> dict[str, Callable[[], paths.Loaded]]:
    """Loaders of the stock path and of each variant of ours (named as in `variants`)."""

    def ours(options: FastPathOptions) -> Callable[[], paths.Loaded]:
        if case.architecture == "sdxl":
            return lambda: paths.our_text_to_image(
                folder, case.model_id, device, dtype, params, options
            )
        if case.architecture == "svd-xt":
            return lambda: paths.our_image_to_video(folder, device, dtype, params, options)
        return lambda: paths.our_upscale(folder, device, dtype, params, options)

    if case.architecture == "sdxl":
        stock = lambda: paths.stock_text_to_image(  # noqa: E731
            folder, case.model_id, device, dtype, params
        )
    elif case.architecture == "svd-xt":
        stock = lambda: paths.stock_image_to_video(folder, device, dtype, params)  # noqa: E731
    else:
        stock = lambda: paths.stock_upscale(folder, device, dtype, params)  # noqa: E731
    return {"stock": stock} | {name: ours(options) for name, options in variants.items()}


def case_flops(case: DiffusionCase, tiny: bool) -> dict[str, int]:
    params = case.params(tiny)
    if case.architecture == "sdxl":
        return flops.sdxl_text_to_image(
            tiny=tiny,
            height=params["height"],
            width=params["width"],
            steps=params["steps"],
            guidance=False,
        )
    if case.architecture == "svd-xt":
        return flops.svd_image_to_video(
            tiny=tiny,
            height=params["height"],
            width=params["width"],
            frames=params["frames"],
            steps=params["steps"],
            decode_chunk=paths.SVD_SETTINGS["decode_chunk_size"],
        )
    return flops.x4_upscale(
        tiny=tiny, height=params["input"], width=params["input"], steps=params["steps"]
    )


def run_case(
    case: DiffusionCase,
    *,
    models: Path,
    device: torch.device,
    dtype: torch.dtype,
    tiny: bool,
    runs: int | None,
    warmup: int | None,
    variants: dict[str, FastPathOptions],
    rate: dict[str, Any],
) -> dict[str, Any]:
    """Load stock and each variant of ours ("ours" first), time them interleaved, compare
    their outputs on one seed."""
    params = case.params(tiny)
    folder = ensure_model(models, case.architecture, tiny=tiny, device=device, dtype=dtype)
    loaded = {
        name: load()
        for name, load in _loaders(case, folder, device, dtype, params, variants).items()
    }
    timed_runs = runs or (min(case.runs, 3) if tiny else case.runs)
    warm = case.warmup if warmup is None else warmup
    timings = interleaved(
        {name: path.run for name, path in loaded.items()}, device, runs=timed_runs, warmup=warm
    )

    # Same seed, every path; and stock on the next seed, the size of a real difference.
    seed = 7
    outputs = {name: path.run(seed) for name, path in loaded.items()}
    other_seed = loaded["stock"].run(seed + 1)
    result = {
        "case": case.key,
        "title": case.title
        if not tiny
        else f"[tiny] {case.architecture} "
        + " ".join(f"{name} {value}" for name, value in params.items()),
        "pipeline": case.pipeline,
        "model_id": case.model_id,
        "params": params,
        "paths": {name: timing.summary() for name, timing in timings.items()},
        "samples_s": {name: list(timing.samples) for name, timing in timings.items()},
        "speedup": timings["stock"].median / timings["ours"].median,
        "variant_speedups": {
            name: timings["stock"].median / timings[name].median for name in variants
        },
        "target": case.target,
        "output_difference": {
            "ours_vs_stock_same_seed": pixel_difference(outputs["ours"], outputs["stock"]),
            "variants_vs_stock_same_seed": {
                name: pixel_difference(outputs[name], outputs["stock"]) for name in variants
            },
            "stock_seed_vs_next_seed": pixel_difference(outputs["stock"], other_seed),
            "images": len(outputs["stock"]),
        },
        "graphs": {name: path.graph_stats() for name, path in loaded.items() if name != "stock"},
        **flops.floor(case_flops(case, tiny), rate),
    }
    result["ours_over_floor"] = timings["ours"].median / result["floor_s"]
    del loaded
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result
