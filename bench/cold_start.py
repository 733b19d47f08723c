"""Case (e): cold start, from a fresh process to the first image returned, per path.

The parent notes the time, starts `python -m bench.cold_start <path> ...` and the child
reports when its first data URL was made, on the same system-wide monotonic clock, with the
time each step took. The weights are those of case (a) on local disk (written by the harness
just before, so the page cache is warm; a container reading a Volume pays the reads too).

Paths: `stock` (the runner's calls), `ours` (the adapter's glue with the fast path), and with
--compile `ours-compile` (torch.compile too), timed with a warm compiler cache: one untimed
start fills the cache first, and its time is reported as the empty-cache start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULT_TAG = "COLD_START_RESULT "
REPO_ROOT = Path(__file__).resolve().parent.parent


def _child(args: argparse.Namespace) -> dict[str, Any]:
    marks = {"started": time.monotonic()}
    import torch

    from bench.constants import PROMPT

    marks["imported_torch"] = time.monotonic()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if args.path == "stock":
        # Only what the runner imports: torch, diffusers, Pillow.
        import base64
        import io

        from diffusers import AutoPipelineForText2Image

        marks["imported"] = time.monotonic()
        pipe = AutoPipelineForText2Image.from_pretrained(args.folder, dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        marks["from_pretrained"] = time.monotonic()
        pipe = pipe.to(device)
        marks["to_device"] = time.monotonic()
        image = pipe(
            prompt=PROMPT,
            height=args.size,
            width=args.size,
            num_inference_steps=1,
            guidance_scale=0.0,
            generator=torch.Generator("cpu").manual_seed(1),
        ).images[0]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    else:
        from adapter.pipelines.text_to_image import TextToImageRunner
        from contract.schemas import ImageResponse, TextToImageParams
        from functions.speed.fast_path import FastPathOptions
        from functions.text_to_image import TextToImage, profile_for

        marks["imported"] = time.monotonic()
        options = FastPathOptions(
            compile_mode="default" if args.path == "ours-compile" else None,
            compile_cache_dir=args.compile_cache,
        )
        handle = TextToImage.load(
            args.folder, device=device, dtype=dtype, profile=profile_for(args.model_id)
        )
        handle.use_fast_path(options)
        marks["loaded"] = time.monotonic()
        request = TextToImageParams(
            prompt=PROMPT,
            height=args.size,
            width=args.size,
            num_inference_steps=1,
            guidance_scale=0.0,
            seed=1,
            safety_check=False,
        )
        response = TextToImageRunner().run(handle, request, lambda: False)
        assert isinstance(response, ImageResponse)
        url = response.images[0].url
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    marks["first_image"] = time.monotonic()
    return {"marks": marks, "url_bytes": len(url)}


def _spawn(
    path: str, folder: Path, model_id: str, device: str, size: int, compile_cache: Path | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.cold_start",
        path,
        "--folder",
        str(folder),
        "--model-id",
        model_id,
        "--device",
        device,
        "--size",
        str(size),
    ]
    if compile_cache is not None:
        command += ["--compile-cache", str(compile_cache)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    spawned = time.monotonic()
    finished = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = [line for line in finished.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(
            f"cold start of {path} failed ({finished.returncode}):\n{finished.stderr[-3000:]}"
        )
    child = json.loads(lines[-1][len(RESULT_TAG) :])
    marks = child["marks"]
    steps = list(marks.items())
    return {
        "seconds": marks["first_image"] - spawned,
        "interpreter_start_s": marks["started"] - spawned,
        "steps_s": {
            name: end - start_time for (_, start_time), (name, end) in itertools.pairwise(steps)
        },
    }


def run_cold_start(
    *, folder: Path, model_id: str, device: str, size: int, runs: int, compile_cache: Path | None
) -> dict[str, Any]:
    paths = ["stock", "ours"] + (["ours-compile"] if compile_cache is not None else [])
    starts: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    empty_cache = None
    if compile_cache is not None:
        empty_cache = _spawn("ours-compile", folder, model_id, device, size, compile_cache)
    for _ in range(runs):
        for path in paths:
            starts[path].append(_spawn(path, folder, model_id, device, size, compile_cache))
    return {
        "case": "e",
        "title": f"Cold start: fresh process to the first {size}x{size} image (weights on "
        "local disk, page cache warm)",
        "paths": {
            path: {
                "median_s": statistics.median(start["seconds"] for start in runs_of_path),
                "runs": len(runs_of_path),
                "samples_s": [start["seconds"] for start in runs_of_path],
                "steps_s_of_median_run": sorted(runs_of_path, key=lambda s: s["seconds"])[
                    len(runs_of_path) // 2
                ]["steps_s"],
            }
            for path, runs_of_path in starts.items()
        },
        "ours-compile_empty_cache_s": None if empty_cache is None else empty_cache["seconds"],
        "target": "ours no slower than stock",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="one cold start (run by the bench harness)")
    parser.add_argument("path", choices=["stock", "ours", "ours-compile"])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--compile-cache", type=Path)
    result = _child(parser.parse_args())
    print(RESULT_TAG + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
