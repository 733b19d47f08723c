"""The unauthenticated service routes: /health, /hardware/info, /hardware/stats, /version."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from adapter.hardware import gpu_compute_info, gpu_utilization_stats
from contract.schemas import HardwareInformation, HardwareStats, HealthCheck, Version

router = APIRouter()


@router.get("/health", response_model=HealthCheck, operation_id="health")
async def health(request: Request) -> HealthCheck:
    # Reads states only: it never waits on a model, a lock or the GPU.
    return HealthCheck(status=request.app.state.service.health())


@router.get("/hardware/info", response_model=HardwareInformation, operation_id="hardware_info")
async def hardware_info(request: Request) -> HardwareInformation:
    model = request.app.state.service.primary
    gpu_info = await asyncio.to_thread(gpu_compute_info)
    return HardwareInformation(
        pipeline=model.pipeline.value, model_id=model.model_id, gpu_info=gpu_info
    )


@router.get("/hardware/stats", response_model=HardwareStats, operation_id="hardware_stats")
async def hardware_stats(request: Request) -> HardwareStats:
    model = request.app.state.service.primary
    gpu_stats = await asyncio.to_thread(gpu_utilization_stats)
    return HardwareStats(
        pipeline=model.pipeline.value, model_id=model.model_id, gpu_stats=gpu_stats
    )


@router.get("/version", response_model=Version, operation_id="version")
async def version(request: Request) -> Version:
    service = request.app.state.service
    model = service.primary
    return Version(
        pipeline=model.pipeline.value,
        model_id=model.model_id,
        version=service.settings.runner_version,
    )
