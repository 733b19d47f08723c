"""The registration a worker sends first on its socket: real facts, in the dispatcher's units.

    field        protocol page   what the dispatcher reads, and so what is sent
    cpu_count    CPUs            the CPUs this process may run on
    disk_space   GB              MB (MiB) free where the models live
    vram         MB              bytes of free host memory (MemAvailable; the reference
                                 worker sends psutil.virtual_memory().available)
    nv_gpus      memory in MB    memory in MB (MiB for a local GPU, as nvidia-smi reports it;
                                 GB x 1000 for a Modal GPU type): see adapter.workerbee.gpus

The dispatcher picks a worker only if its summed GPU memory, `vram` and `disk_space` exceed
what the requested model's size needs, so these are measured at each (re)connection.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapter import __version__
from adapter.workerbee.gpus import MIB, NvidiaGpus, local_gpus, modal_gpus
from adapter.workerbee.signing import sign
from contract.pipelines import Pipeline

if TYPE_CHECKING:
    from adapter.service import RunnerService
    from adapter.settings import Settings

# What each pipeline lets the worker answer, in the dispatcher's capability names.
CAPABILITIES = {Pipeline.LLM: "llama-infer", Pipeline.TEXT_TO_IMAGE: "sdxl"}
# The pipelines a dispatcher's requests reach: chat completions and image generations.
JOB_PIPELINES = tuple(CAPABILITIES)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_disk_mb(path: Path) -> int:
    """Free space, in MiB, of the file system holding `path` (or its nearest existing parent)."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free // MIB


def free_memory_bytes() -> int:
    """Host memory available to new work, in bytes: Linux's MemAvailable (what psutil reports
    as `available`), else the free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def advertised_capabilities(settings: Settings, service: RunnerService) -> list[str]:
    configured = _listed(settings.workerbee.capabilities)
    if configured:
        return configured
    served = {model.pipeline for model in service.models}
    return [name for pipeline, name in CAPABILITIES.items() if pipeline in served]


def advertised_models(settings: Settings, service: RunnerService) -> list[str]:
    configured = _listed(settings.workerbee.models)
    if configured:
        return configured
    ids: dict[str, None] = {}
    for model in service.models:
        if model.pipeline in JOB_PIPELINES:
            ids.setdefault(model.model_id, None)
    return list(ids)


def serving_gpus(settings: Settings, service: RunnerService, nvml: Any | None) -> NvidiaGpus:
    if settings.backend == "local":
        return local_gpus(settings.device, nvml)
    if settings.backend == "modal":
        return modal_gpus(m for m in service.models if m.pipeline in JOB_PIPELINES)
    return NvidiaGpus()


def registration(
    settings: Settings, service: RunnerService, nvml: Any | None = None
) -> dict[str, Any]:
    """The registration message (signed when a private key is configured)."""
    bee = settings.workerbee
    gpus = serving_gpus(settings, service, nvml)
    message: dict[str, Any] = {
        "worker_version": __version__,
        "capabilities": advertised_capabilities(settings, service),
        "pubkey": "",
        "slug": bee.slug,
        "sig": "",
        # ln_url is the older name of ln_address; the reference worker sends both.
        "ln_url": bee.ln_address,
        "ln_address": bee.ln_address,
        "auth_key": bee.auth_key,
        "cpu_count": cpu_count(),
        "disk_space": free_disk_mb(bee.disk_path or settings.model_dir),
        "vram": free_memory_bytes(),
        "nv_gpu_count": len(gpus.gpus),
        "nv_driver_version": gpus.driver_version,
        "nv_gpus": [gpu.to_json() for gpu in gpus.gpus],
        "cl_driver_version": None,
        "cl_gpus": [],
        "web_gpus": [],
        "models": advertised_models(settings, service),
    }
    return sign(message, bee.private_key) if bee.private_key else message


def summary(message: dict[str, Any]) -> str:
    """The registration for the log, without its secrets."""
    shown = {k: v for k, v in message.items() if k not in ("auth_key", "sig")}
    return ", ".join(f"{key}={value}" for key, value in shown.items())
