"""Per-entry Modal settings: the `runner.modal` object of an aiModels.json entry.

go-livepeer ignores the `runner` key; `modal_app.py` reads these to define one GPU class (one
warm pool) per (pipeline, model). Every field has a default, so an entry needs none of them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

# Modal's own bounds, checked here so a bad file fails with our message at deploy time.
MIN_SCALEDOWN_S = 2
MAX_SCALEDOWN_S = 3600
MAX_TIMEOUT_S = 24 * 3600
GPU_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.!+-]*(:[1-8])?$")
HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")


class WarmWindow(BaseModel):
    """Keep `min_containers` warm during `hours_utc`, e.g. "8-20" (8:00 to 20:00 UTC)."""

    model_config = ConfigDict(extra="forbid")

    hours_utc: StrictStr = Field(
        description="Start-end hour in UTC, end excluded; '22-6' wraps past midnight, '0-24' is "
        "all day."
    )
    min_containers: Annotated[StrictInt, Field(ge=0)] = 1

    @field_validator("hours_utc")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        match = HOURS.match(value.strip())
        if match is None:
            raise ValueError(f"expected 'start-end' in whole hours such as '8-20', got {value!r}")
        start, end = int(match.group(1)), int(match.group(2))
        if not (0 <= start <= 23 and 0 <= end <= 24) or start == end:
            raise ValueError(f"hours must be 0-23 then 1-24 and differ, got {value!r}")
        return f"{start}-{end}"

    @property
    def hours(self) -> frozenset[int]:
        start, end = (int(part) for part in self.hours_utc.split("-"))
        if start < end:
            return frozenset(range(start, end))
        return frozenset(range(start, 24)) | frozenset(range(0, end))


class ModalSettings(BaseModel):
    """How one model is served on Modal (`runner.modal` in its aiModels.json entry)."""

    model_config = ConfigDict(extra="forbid")

    gpu: StrictStr = Field(
        "L40S",
        description="Modal GPU type, e.g. 'L4', 'A10', 'L40S', 'A100-80GB', 'H100', 'H100:2'.",
    )
    gpu_fallbacks: list[StrictStr] = Field(
        default_factory=list,
        description="GPU types to use, in order, when `gpu` is not available.",
    )
    min_containers: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None,
        description="Containers kept running when idle. Default: 1 when the entry is warm, "
        "else 0. A warm entry needs at least 1 (unless a warm_schedule decides).",
    )
    max_containers: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None,
        description="Most containers at once. Default: enough for the entry's capacity "
        "(max_in_flight / max_concurrent_inputs), so Modal never runs more GPUs than the "
        "orchestrator can send work to.",
    )
    buffer_containers: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="Extra idle containers kept ready while the model is busy."
    )
    scaledown_window: Annotated[StrictInt, Field(ge=MIN_SCALEDOWN_S, le=MAX_SCALEDOWN_S)] = Field(
        300, description="Seconds an idle container lives before it is stopped."
    )
    max_concurrent_inputs: Annotated[StrictInt, Field(gt=0)] = Field(
        1,
        description="Requests one container accepts at once. They run one after another on "
        "the model (a diffusers pipeline is not thread-safe); more than 1 lets a busy "
        "container queue a request instead of Modal starting a new (cold) one.",
    )
    timeout: Annotated[StrictInt, Field(gt=0, le=MAX_TIMEOUT_S)] | None = Field(
        None,
        description="Longest run of one request in seconds (default: the entry's "
        "runner.request_timeout_s, else the pipeline's in contract/pipelines.py).",
    )
    startup_timeout: Annotated[StrictInt, Field(gt=0, le=MAX_TIMEOUT_S)] = Field(
        600, description="Longest container start (model load from the Volume) in seconds."
    )
    snapshot: Literal["off", "cpu", "gpu"] = Field(
        "cpu",
        description="Memory snapshot for faster cold starts. 'cpu': imports and (where the "
        "pipeline supports it) weights loaded in CPU memory are snapshotted, then moved to the "
        "GPU; 'gpu': Modal's alpha GPU snapshot of the model loaded, compiled and warmed up "
        "on the GPU; 'off'.",
    )
    warm_schedule: list[WarmWindow] = Field(
        default_factory=list,
        description="Warm only in these UTC hours: min_containers follows the window of the "
        "current hour (0 outside every window), applied by a scheduled function.",
    )

    @field_validator("gpu", "gpu_fallbacks")
    @classmethod
    def _check_gpu(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if not GPU_NAME.match(name):
                raise ValueError(f"not a Modal GPU type: {name!r} (e.g. 'L40S' or 'H100:2')")
        return value
