"""GPU facts through NVML, as the runner reports them; an empty map where there is no GPU."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from contract.schemas import GPUComputeInfo, GPUUtilizationInfo

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no driver, no library, no device: all mean "no GPU facts"
        logger.debug("NVML unavailable: %s", exc)
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _per_gpu(describe: Callable[[Any, Any], T]) -> dict[int, T]:
    """`describe(nvml, handle)` for each GPU; an empty map without NVML or on its failure."""
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        return {
            index: describe(nvml, nvml.nvmlDeviceGetHandleByIndex(index))
            for index in range(nvml.nvmlDeviceGetCount())
        }
    except Exception as exc:
        logger.warning("NVML query failed: %s", exc)
        return {}
    finally:
        nvml.nvmlShutdown()


def _compute_info(nvml: Any, handle: Any) -> GPUComputeInfo:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    return GPUComputeInfo(
        id=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total=memory.total,
        memory_free=memory.free,
        major=major,
        minor=minor,
    )


def _utilization(nvml: Any, handle: Any) -> GPUUtilizationInfo:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
    return GPUUtilizationInfo(
        id=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total=memory.total,
        memory_free=memory.free,
        utilization_compute=utilization.gpu,
        utilization_memory=utilization.memory,
    )


def gpu_compute_info() -> dict[int, GPUComputeInfo]:
    return _per_gpu(_compute_info)


def gpu_utilization_stats() -> dict[int, GPUUtilizationInfo]:
    return _per_gpu(_utilization)
