"""GPU facts through NVML, as the runner reports them; an empty map where there is no GPU."""

from __future__ import annotations

import logging
from typing import Any

from adapter.schemas import GPUComputeInfo, GPUUtilizationInfo

logger = logging.getLogger(__name__)


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


def gpu_compute_info() -> dict[int, GPUComputeInfo]:
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        info = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            info[index] = GPUComputeInfo(
                id=_text(nvml.nvmlDeviceGetUUID(handle)),
                name=_text(nvml.nvmlDeviceGetName(handle)),
                memory_total=memory.total,
                memory_free=memory.free,
                major=major,
                minor=minor,
            )
        return info
    except Exception as exc:
        logger.warning("NVML query failed: %s", exc)
        return {}
    finally:
        nvml.nvmlShutdown()


def gpu_utilization_stats() -> dict[int, GPUUtilizationInfo]:
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        stats = {}
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            stats[index] = GPUUtilizationInfo(
                id=_text(nvml.nvmlDeviceGetUUID(handle)),
                name=_text(nvml.nvmlDeviceGetName(handle)),
                memory_total=memory.total,
                memory_free=memory.free,
                utilization_compute=utilization.gpu,
                utilization_memory=utilization.memory,
            )
        return stats
    except Exception as exc:
        logger.warning("NVML query failed: %s", exc)
        return {}
    finally:
        nvml.nvmlShutdown()
