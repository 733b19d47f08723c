"""The harness's outputs: the results file, the seconds-per-job file, the table.

- `bench/results/run-<time>.json` (format `modal-ai-runner-bench-run/1`): everything measured,
  with the environment, the command and the matrix rate the floors use.
- `bench/results/seconds-per-job.json` (format `modal-ai-runner-bench/1`, the one
  `python -m pricing table --results ...` reads, see pricing/results.py): our path's median
  seconds per job for each diffusion case, with case (e)'s cold start on case (a)'s model.
- The table, as text on stdout and as Markdown beside the results (for BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

RUN_FORMAT = "modal-ai-runner-bench-run/1"
SECONDS_FORMAT = "modal-ai-runner-bench/1"
PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "pillow",
    "isal",
    "numpy",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
)
TIMING_NOTE = (
    "Models are the real architectures with random weights (no download possible here); "
    "timing does not depend on weight values. Medians of device-synchronised runs after "
    "warm-up, stock and ours interleaved, a fresh seed per run."
)
# Modal GPU kinds, longest names first ("L40S" before "L4").
_GPU_KINDS = ("H200", "H100", "B200", "A100", "L40S", "A10G", "L4", "T4")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_kind(device: torch.device) -> tuple[str, str]:
    """(Modal GPU kind, device name) of `device`; ("CPU", the CPU's model) without one."""
    if device.type != "cuda":
        return "CPU", cpu_model()
    name = torch.cuda.get_device_name(device)
    for kind in _GPU_KINDS:
        if kind in name.upper().replace("-", " "):
            if kind == "A100":
                memory_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
                return ("A100-80GB" if memory_gib > 45 else "A100-40GB"), name
            return kind, name
    return name, name


def environment(device: torch.device) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    kind, name = gpu_kind(device)
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": kind,
        "device_name": name,
        "versions": versions,
    }
    if device.type == "cuda":
        facts["cuda"] = torch.version.cuda
        facts["cudnn"] = torch.backends.cudnn.version()
    return facts


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, body: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def _request_of(case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    params = case["params"]
    if case["pipeline"] == "text-to-image":
        return {
            "width": params["width"],
            "height": params["height"],
            "num_inference_steps": params["steps"],
            "guidance_scale": 0.0,
        }, {}
    if case["pipeline"] == "image-to-video":
        return {
            "width": params["width"],
            "height": params["height"],
            "num_inference_steps": params["steps"],
        }, {"width": params["width"], "height": params["height"]}
    return {"num_inference_steps": params["steps"]}, {
        "width": params["input"],
        "height": params["input"],
    }


def seconds_per_job(run: dict[str, Any]) -> dict[str, Any]:
    """Our path's seconds per job, in the format pricing/results.py reads."""
    tiny = run["mode"] == "tiny"
    cold = run["cases"].get("e", {}).get("paths", {}).get("ours", {}).get("median_s")
    results = []
    for key in ("a", "b", "c", "u"):
        case = run["cases"].get(key)
        if case is None:
            continue
        request, inputs = _request_of(case)
        entry: dict[str, Any] = {
            "pipeline": case["pipeline"],
            "model_id": ("tiny/" if tiny else "") + case["model_id"],
            "gpu": run["environment"]["gpu"],
            "device_name": run["environment"]["device_name"],
            "request": request,
            "input": inputs,
            "seconds_per_job": case["paths"]["ours"]["median_s"],
            "runs": case["paths"]["ours"]["runs"],
            "samples": case["samples_s"]["ours"],
            "measured_at": run["created_at"],
            "source": f"bench case ({key}), our path"
            + (" on tiny configs" if tiny else "")
            + "; random weights",
        }
        if key == "a" and cold is not None:
            entry["cold_start_seconds"] = cold
        results.append(entry)
    return {"format": SECONDS_FORMAT, "results": results}


# --- the table ---------------------------------------------------------------------------


def _t(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _bytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def _signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + _t(abs(seconds))


def table_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key in ("a", "b", "c", "u"):
        case = run["cases"].get(key)
        if case is None:
            continue
        difference = case["output_difference"]
        same, seeds = difference["ours_vs_stock_same_seed"], difference["stock_seed_vs_next_seed"]
        rows.append(
            [
                f"({key})",
                case["title"],
                _t(case["paths"]["stock"]["median_s"]),
                _t(case["paths"]["ours"]["median_s"]),
                f"{case['speedup']:.2f}x",
                f"{case['target']:g}x" if case["target"] else "-",
                f"{_t(case['floor_s'])} ({case['total_flops'] / 1e12:.3g} TFLOP)",
                f"{case['ours_over_floor']:.1f}x",
                f"max {same['max']:g}, mean {same['mean']:.3f} (seeds: mean {seeds['mean']:.1f})",
            ]
        )
        for name, speedup in case.get("variant_speedups", {}).items():
            if name == "ours":
                continue
            other = difference["variants_vs_stock_same_seed"][name]
            rows.append(
                [
                    f"({key})",
                    f"  {name}",
                    "-",
                    _t(case["paths"][name]["median_s"]),
                    f"{speedup:.2f}x",
                    "-",
                    "-",
                    f"{case['paths'][name]['median_s'] / case['floor_s']:.1f}x",
                    f"max {other['max']:g}, mean {other['mean']:.3f}",
                ]
            )
    png = run["cases"].get("d")
    if png is not None:
        for row in png["rows"]:
            size = row["png_bytes"]
            rows.append(
                [
                    "(d)",
                    f"PNG data URL {row['size']}x{row['size']} {row['image']}",
                    _t(row["paths"]["stock"]["median_s"]),
                    _t(row["paths"]["ours"]["median_s"]),
                    f"{row['speedup']:.1f}x",
                    "4x",
                    "-",
                    "-",
                    f"lossless {all(row['lossless'].values())}; PNG {_bytes(size['stock'])} -> "
                    f"{_bytes(size['ours'])}",
                ]
            )
    cold = run["cases"].get("e")
    if cold is not None:
        paths = cold["paths"]
        ours = paths["ours"]["median_s"]
        rows.append(
            [
                "(e)",
                "Cold start to first image",
                _t(paths["stock"]["median_s"]),
                _t(ours),
                f"{paths['stock']['median_s'] / ours:.2f}x",
                ">= 1x",
                "-",
                "-",
                f"runs {paths['ours']['runs']}",
            ]
        )
        if "ours-compile" in paths:
            rows.append(
                [
                    "(e)",
                    "Cold start, ours + torch.compile (warm cache)",
                    "-",
                    _t(paths["ours-compile"]["median_s"]),
                    "-",
                    "-",
                    "-",
                    "-",
                    f"empty cache {_t(cold['ours-compile_empty_cache_s'])}",
                ]
            )
    overhead = run["cases"].get("f")
    if overhead is not None:
        for row in overhead["rows"]:
            stats = row["paths"]
            rows.append(
                [
                    "(f)",
                    f"Adapter vs bare route, concurrency {row['concurrency']}, p50",
                    _t(stats["bare"]["p50_s"]),
                    _t(stats["adapter"]["p50_s"]),
                    f"ratio {row['p50_ratio']:.2f}",
                    "<= 1.3",
                    "-",
                    "-",
                    f"{_signed(row['p50_added_s'])}; {stats['adapter']['requests_per_s']:.0f} vs "
                    f"{stats['bare']['requests_per_s']:.0f} req/s; bytes-only route p50 "
                    f"{_t(stats['bare-bytes']['p50_s'])} (ratio "
                    f"{row['p50_ratio_to_bytes_route']:.2f})",
                ]
            )
    return rows


HEADER = ["case", "what", "stock", "ours", "speed-up", "target", "floor", "ours/floor", "notes"]


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [HEADER, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
