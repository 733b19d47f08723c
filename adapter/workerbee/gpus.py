"""The GPUs that will serve the worker's requests, in the registration's terms.

- local backend: the GPU the models run on (`ADAPTER_DEVICE`), read through NVML: its name,
  UUID, total memory in MiB (what nvidia-smi reports as "MB", and the dispatcher reads as MB),
  and its maximum graphics clock in MHz, with the driver version;
- Modal backend: each served model's GPU class (`runner.modal.gpu`, its count included), with
  the memory of Modal's published table below;
- otherwise (http backend, or the CPU): none. Never an invented GPU: a dispatcher that needs
  GPU memory will then not pick this worker, which is the truth.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contract.aimodels import ServedModel

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# GPU memory of each Modal GPU type, in GB as Modal publishes it (modal.com/docs/guide/gpu and
# its pricing page, read 2026-12); reported as MB (GB x 1000), the dispatcher's unit. Keys are
# the `gpu` strings Modal accepts, upper case; aliases map onto them.
MODAL_GPU_MEMORY_GB: dict[str, int] = {
    "T4": 16,
    "L4": 24,
    "A10": 24,
    "L40S": 48,
    "A100-40GB": 40,
    "A100-80GB": 80,
    "RTX-PRO-6000": 96,
    "H100": 80,
    "H200": 141,
    "B200": 192,
}
MODAL_GPU_ALIASES = {"A10G": "A10", "A100": "A100-40GB", "H100!": "H100", "B200+": "B200"}


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mb: int
    uuid: str | None = None
    clock: int | None = None
    clock_unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "memory": self.memory_mb,
            "clock": self.clock,
            "clock_unit": self.clock_unit,
        }


@dataclass(frozen=True)
class NvidiaGpus:
    driver_version: str | None = None
    gpus: list[Gpu] = field(default_factory=list)


def load_nvml() -> Any | None:
    """The initialised NVML module (nvidia-ml-py), or None without a driver or a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        logger.debug("NVML unavailable: %s", exc)
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def serving_gpu_selectors(device: str, visible: str | None) -> list[int | str]:
    """NVML's indexes (or UUIDs) of the GPU `device` names: `auto` and `cuda` are CUDA's device
    0, `cuda:N` its device N; `CUDA_VISIBLE_DEVICES` maps CUDA's numbering onto NVML's."""
    if device == "cpu":
        return []
    cuda_index = int(device.split(":", 1)[1]) if ":" in device else 0
    if visible is None or not visible.strip():
        return [cuda_index]
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if cuda_index >= len(entries):
        return []
    entry = entries[cuda_index]
    return [int(entry)] if entry.isdigit() else [entry]


def local_gpus(device: str, nvml: Any | None = None) -> NvidiaGpus:
    """The GPU that `device` serves on, through NVML (a stand-in in tests)."""
    selectors = serving_gpu_selectors(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not selectors:
        return NvidiaGpus()
    nvml = load_nvml() if nvml is None else nvml
    if nvml is None:
        return NvidiaGpus()
    try:
        count = nvml.nvmlDeviceGetCount()
        gpus = []
        for selector in selectors:
            if isinstance(selector, int):
                if selector >= count:
                    continue
                handle = nvml.nvmlDeviceGetHandleByIndex(selector)
            else:
                handle = nvml.nvmlDeviceGetHandleByUUID(selector)
            gpus.append(
                Gpu(
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    memory_mb=int(nvml.nvmlDeviceGetMemoryInfo(handle).total // MIB),
                    clock=int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_GRAPHICS)),
                    clock_unit="MHz",
                )
            )
        driver = _text(nvml.nvmlSystemGetDriverVersion())
    except Exception as exc:
        logger.warning("NVML query failed; reporting no GPU: %s", exc)
        return NvidiaGpus()
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception as exc:
            logger.debug("NVML shutdown failed: %s", exc)
    return NvidiaGpus(driver_version=driver, gpus=gpus)


def modal_gpu_type(gpu: str) -> tuple[str, int]:
    """('H100', 2) for Modal's 'H100:2'."""
    name, _, count = gpu.partition(":")
    key = name.strip().upper()
    return MODAL_GPU_ALIASES.get(key, key), int(count) if count else 1


def modal_gpus(models: Iterable[ServedModel]) -> NvidiaGpus:
    """The GPUs of the served models' Modal classes (each model runs in its own containers)."""
    gpus: list[Gpu] = []
    for model in models:
        kind, count = modal_gpu_type(model.runner.modal.gpu)
        memory_gb = MODAL_GPU_MEMORY_GB.get(kind)
        if memory_gb is None:
            logger.warning(
                "workerbee: the memory of Modal GPU %r (model %s) is not known; it is left out "
                "of the registration",
                model.runner.modal.gpu,
                model.model_id,
            )
            continue
        gpus.extend(Gpu(name=kind, memory_mb=memory_gb * 1000) for _ in range(count))
    return NvidiaGpus(gpus=gpus)
