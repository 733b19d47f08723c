"""Measured seconds per job: the results file that `calibrate` and the bench harness write.

Format (JSON; `bench/results/` is git-ignored, so results stay on the machine that made them):

    {
      "format": "modal-ai-runner-bench/1",
      "results": [
        {
          "pipeline": "text-to-image",            # a runner pipeline
          "model_id": "stabilityai/sdxl-turbo",   # as in aiModels.json
          "gpu": "H100",                          # Modal gpu kind it ran on ("CPU" for none)
          "device_name": "NVIDIA H100 80GB HBM3", # what the device called itself
          "request": {"prompt": "...", "width": 512, "height": 512},
                                                  # the timed request's fields (no files)
          "input": {"width": 512, "height": 512}, # uploads: image size and/or
                                                  #   {"audio_duration_ms": 30000}
          "seconds_per_job": 0.181,               # median container seconds of one warm job
          "runs": 20,                             # how many timed jobs the median is of
          "samples": [0.18, 0.181],               # optional: every timed job
          "cold_start_seconds": 29.1,             # optional: start to first result
          "measured_at": "2026-11-22T10:00:00Z",  # ISO 8601
          "source": "pricing calibrate"           # who measured, how
        }
      ]
    }

A job's seconds are what the container is busy for it: the pipeline plus encoding the response
(a PNG data URL costs as much as a fast GPU step on an H100, measured 2026-11-22), as
`PipelineRunner.run` does.
"""

from __future__ import annotations

import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StrictStr,
    ValidationError,
)

from contract.pipelines import Pipeline
from contract.units import RequestFacts

RESULTS_FORMAT = "modal-ai-runner-bench/1"

# Measured figures: exact while computed with, JSON numbers when written.
Figure = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class ResultsError(ValueError):
    """A results file that cannot be read; the message names the result and field."""


class InputFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: Annotated[StrictInt, Field(gt=0)] | None = None
    height: Annotated[StrictInt, Field(gt=0)] | None = None
    audio_duration_ms: Annotated[Figure, Field(gt=0)] | None = None

    def facts(self) -> RequestFacts:
        return RequestFacts(self.width, self.height, self.audio_duration_ms)


class Measurement(BaseModel):
    """Seconds per job of one (pipeline, model, GPU, request)."""

    model_config = ConfigDict(extra="forbid")

    pipeline: Pipeline
    model_id: Annotated[StrictStr, Field(min_length=1)]
    gpu: Annotated[StrictStr, Field(min_length=1)]
    device_name: StrictStr = ""
    request: dict[str, Any] = Field(default_factory=dict)
    input: InputFacts = Field(default_factory=InputFacts)
    seconds_per_job: Annotated[Figure, Field(gt=0)]
    runs: Annotated[StrictInt, Field(gt=0)]
    samples: list[Annotated[Figure, Field(ge=0)]] = Field(default_factory=list)
    cold_start_seconds: Annotated[Figure, Field(ge=0)] | None = None
    measured_at: StrictStr
    source: StrictStr = ""


class ResultsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: StrictStr
    results: list[Measurement]


def load_results(path: Path) -> list[Measurement]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read the results file: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if isinstance(raw, dict) and raw.get("format") != RESULTS_FORMAT:
        raise ResultsError(
            f"{path}: field 'format': expected {RESULTS_FORMAT!r}, got {raw.get('format')!r}"
        )
    try:
        return ResultsFile.model_validate(raw).results
    except ValidationError as exc:
        problems = [
            f"field '{'.'.join(str(p) for p in item['loc'])}': {item['msg']}"
            for item in exc.errors()
        ]
        raise ResultsError(f"{path}: " + "; ".join(problems)) from exc


def _key(result: Measurement) -> tuple[str, str, str, str, str]:
    return (
        result.pipeline.value,
        result.model_id,
        result.gpu.upper(),
        json.dumps(result.request, sort_keys=True, default=str),
        result.input.model_dump_json(),
    )


def save_results(path: Path, new: list[Measurement]) -> None:
    """Add `new` to the results at `path` (replacing results of the same model, GPU and
    request), written atomically."""
    kept = load_results(path) if path.exists() else []
    replaced = {_key(result) for result in new}
    merged = [result for result in kept if _key(result) not in replaced] + new
    body = ResultsFile(format=RESULTS_FORMAT, results=merged).model_dump(mode="json")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(body, indent=2, default=str) + "\n"
    handle, temp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def find_measurements(
    results: list[Measurement], pipeline: Pipeline, model_id: str
) -> list[Measurement]:
    return [r for r in results if r.pipeline == pipeline and r.model_id == model_id]
