"""Measure seconds per job by running an entry's real pipeline on this machine's device.

It uses the adapter's own glue (`adapter.pipelines.PIPELINES[p]`: prepare, load, run), so the
timed work is what a request costs the container: the pipeline plus encoding the response.
The cold start it reports is from this call to the first result (importing torch and diffusers,
loading the weights, the first call); a Modal container adds its own start and image pull.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from adapter.pipelines import PIPELINES
from adapter.settings import Settings
from contract.aimodels import ServedModel
from contract.schemas import RequestModel, Upload
from contract.units import RequestFacts
from pricing.cost import PricingError
from pricing.gpus import GPU_USD_PER_SECOND
from pricing.results import InputFacts, Measurement

if TYPE_CHECKING:
    import torch


def gpu_kind(device_name: str, memory_gib: float) -> str | None:
    """The Modal gpu kind a CUDA device's name denotes, or None when it is none of them."""
    upper = device_name.upper().replace("-", " ")
    if "A100" in upper:
        return "A100-80GB" if memory_gib > 45 else "A100-40GB"
    found = [kind for kind in GPU_USD_PER_SECOND if kind.replace("-", " ") in upper]
    # "L4" is inside "L40S" and "A10" inside "A100": the longest match is the device.
    return max(found, key=len) if found else None


def detect_gpu(device: torch.device) -> tuple[str | None, str]:
    """(Modal gpu kind or None when unsure, device name) of `device`."""
    import torch

    if device.type != "cuda":
        return "CPU", "cpu"
    name = torch.cuda.get_device_name(device)
    memory_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return gpu_kind(name, memory_gib), name


def _seconds(start: float) -> Decimal:
    return Decimal(f"{time.perf_counter() - start:.6f}")


def calibrate(
    model: ServedModel,
    request: RequestModel,
    facts: RequestFacts,
    settings: Settings,
    runs: int,
    warmup: int,
    gpu: str | None = None,
) -> Measurement:
    """Time `runs` jobs of `request` after `warmup` untimed ones; the median is the result."""
    if runs < 1 or warmup < 0:
        raise PricingError(f"need runs >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    started = time.perf_counter()
    from functions.device import pick_device, pick_dtype
    from functions.loading import resolve_model_path

    glue = PIPELINES.get(model.pipeline)
    if glue is None:
        raise PricingError(f"{model.pipeline.value} has no implementation to calibrate")
    device = pick_device(settings.device)
    detected, device_name = detect_gpu(device)
    kind = gpu or detected
    if kind is None:
        raise PricingError(f"cannot tell which Modal GPU {device_name!r} is: name it with --gpu")
    prepared = asyncio.run(glue.prepare(request, settings.limits)).request
    folder = resolve_model_path(model.model_id, model.runner.model_path, settings.model_dir)
    handle = glue.load(
        model, folder, device, pick_dtype(device, model.runner.torch_dtype), settings
    )
    glue.run(handle, prepared, _never_stop)
    cold_start = _seconds(started)
    for _ in range(warmup):
        glue.run(handle, prepared, _never_stop)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        glue.run(handle, prepared, _never_stop)
        _synchronize(device)
        samples.append(_seconds(start))
    return Measurement(
        pipeline=model.pipeline,
        model_id=model.model_id,
        gpu=kind,
        device_name=device_name,
        request=_fields(request),
        input=InputFacts(
            width=facts.input_width,
            height=facts.input_height,
            audio_duration_ms=facts.audio_duration_ms,
        ),
        seconds_per_job=statistics.median(samples),
        runs=runs,
        samples=samples,
        cold_start_seconds=cold_start,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=f"pricing calibrate, Python {sys.version.split()[0]}, device {device}",
    )


def _never_stop() -> bool:
    return False


def _synchronize(device: torch.device) -> None:
    # The response holds encoded images, so the GPU work is done; this only makes sure.
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _fields(request: RequestModel) -> dict[str, Any]:
    return {
        name: getattr(request, name)
        for name in sorted(request.model_fields_set)
        if not isinstance(getattr(request, name), Upload)
    }
