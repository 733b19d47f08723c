"""The orchestrator's own `aiModels.json`, read as the adapter's model configuration.

An operator keeps one file: go-livepeer reads the fields it knows (`pipeline`, `model_id`, `url`,
`token`, `warm`, `capacity`, `optimization_flags`, `gateway`, `price_per_unit`,
`pixels_per_unit`, `currency`) and ignores the rest; the adapter reads the same fields plus an
optional `runner` object of its own settings in each entry. A bad file fails at start with a
message naming the entry and the field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from contract.errors import ConfigError, OptimizationFlagError
from contract.modal_settings import ModalSettings
from contract.optimization_flags import OptimizationFlags, parse_optimization_flags
from contract.pipelines import PIPELINE_SPECS, Pipeline

logger = logging.getLogger(__name__)

LIVEPEER_FIELDS = frozenset(
    {
        "pipeline",
        "model_id",
        "url",
        "token",
        "warm",
        "capacity",
        "optimization_flags",
        "gateway",
        "price_per_unit",
        "pixels_per_unit",
        "currency",
    }
)
RUNNER_KEY = "runner"


class RunnerSettings(BaseModel):
    """Our own per-entry settings, under the entry's `runner` key (go-livepeer ignores it)."""

    model_config = ConfigDict(extra="forbid")

    default: StrictBool = Field(
        False, description="Serve this model when a request names no model_id."
    )
    model_path: StrictStr | None = Field(
        None,
        description="Folder holding the weights in diffusers/transformers layout. When absent, "
        "the model is looked up by model_id in the Hugging Face cache under MODEL_DIR.",
    )
    demo: StrictBool = Field(
        False,
        description="Build a tiny random-weight model at model_path when none is there "
        "(it draws noise; for trying the service without weights).",
    )
    max_in_flight: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None, description="Requests served at once (default: the entry's capacity)."
    )
    max_queue: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="Requests that may wait for a slot (default: max_in_flight)."
    )
    safety_checker: StrictStr | None = Field(
        None,
        description="Folder (or HF cache model id) of a StableDiffusionSafetyChecker with its "
        "image processor; without one every image reports nsfw=false.",
    )
    guidance_scale: StrictFloat | StrictInt | None = Field(
        None, description="Force this guidance scale (e.g. 0 for Turbo/Lightning models)."
    )
    num_inference_steps: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None, description="Force this number of steps (e.g. 4 for a 4-step Lightning model)."
    )
    torch_dtype: str = Field("auto", pattern="^(auto|float16|bfloat16|float32)$")
    fast_path: StrictBool = Field(
        True,
        description="On a CUDA device, serve with the fast path (functions/speed/fast_path.py: "
        "CUDA graphs, resident float32 VAE, pixels rounded on the GPU); false runs stock "
        "diffusers. No effect on the CPU.",
    )
    upstream_url: Annotated[StrictStr, Field(pattern=r"^https?://")] | None = Field(
        None,
        description="With the http backend: base URL of the runner-contract service that "
        "serves this model (a runner container, or another adapter).",
    )
    upstream_token: StrictStr = Field(
        "", description="Bearer token the http backend sends to upstream_url."
    )
    request_timeout_s: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = Field(
        None,
        description="Longest a request to the backend may take (default: the pipeline's, "
        "see contract/pipelines.py).",
    )
    modal: ModalSettings = Field(
        default_factory=ModalSettings,
        description="How modal_app.py serves this model on Modal (GPU, warm pool, timeouts).",
    )
    num_frames: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None, description="Image-to-video: frames per video (default: the model's own)."
    )
    decode_chunk_size: Annotated[StrictInt, Field(gt=0)] | None = Field(
        None,
        description="Image-to-video: frames the VAE decodes at once (default: as many as the "
        "free memory allows).",
    )
    enhance: dict[str, StrictStr | StrictBool | StrictInt | StrictFloat] | None = Field(
        None,
        description="The request fields an enhanced job (POST /v1/jobs/{id}/enhance) changes, "
        'e.g. {"num_inference_steps": 40} (default: the pipeline\'s, contract/pipelines.py).',
    )


OptimizationFlagValue = StrictStr | StrictBool | StrictInt | StrictFloat


def _whole_number(value: Any) -> Any:
    """A float that is a whole number as the int it stands for (from its shortest decimal
    form, so 1e30 is exactly 10**30); anything else unchanged, for the field's own checks."""
    if isinstance(value, float) and value.is_integer():
        return int(Decimal(repr(value)))
    return value


class ModelEntry(BaseModel):
    """One entry of aiModels.json (go-livepeer's `core.AIModelConfig` plus `runner`)."""

    model_config = ConfigDict(extra="allow")

    pipeline: Pipeline
    model_id: Annotated[StrictStr, Field(min_length=1)]
    url: StrictStr = ""
    token: StrictStr = ""
    warm: StrictBool = False
    capacity: Annotated[StrictInt, Field(ge=0)] = 0
    optimization_flags: dict[str, OptimizationFlagValue] = Field(default_factory=dict)
    gateway: StrictStr = ""
    # go-livepeer parses the raw JSON number; a string such as "0.5e-2USD" is refused there too.
    price_per_unit: Annotated[StrictInt | StrictFloat, Field(ge=0)] | None = None
    # Any JSON number that is a positive whole number, as go-livepeer's big.Rat reads it:
    # 100000000, 1e8 and 100000000.0 are the same; 1.5 and "1" are refused.
    pixels_per_unit: Annotated[StrictInt, BeforeValidator(_whole_number), Field(gt=0)] | None = None
    currency: StrictStr = ""
    runner: RunnerSettings = Field(default_factory=RunnerSettings)


@dataclass(frozen=True)
class ServedModel:
    """A (pipeline, model_id) the adapter serves, merged from its aiModels.json entries."""

    pipeline: Pipeline
    model_id: str
    warm: bool
    capacity: int
    tokens: tuple[str, ...]
    runner: RunnerSettings
    # As the entries give them (merged), and as parsed once at start: what the loaders act on.
    optimization_flags: dict[str, OptimizationFlagValue]
    flags: OptimizationFlags = dataclasses.field(default_factory=OptimizationFlags)

    @property
    def max_in_flight(self) -> int:
        return self.runner.max_in_flight or self.capacity

    @property
    def max_queue(self) -> int:
        return self.max_in_flight if self.runner.max_queue is None else self.runner.max_queue

    @property
    def key(self) -> str:
        return f"{self.pipeline.value}/{self.model_id}"

    @property
    def request_timeout_s(self) -> float:
        """The entry's `runner.request_timeout_s`, else the pipeline's default."""
        configured = self.runner.request_timeout_s
        if configured is not None:
            return float(configured)
        return PIPELINE_SPECS[self.pipeline].default_timeout_s


def _describe(index: int, raw: Any) -> str:
    if isinstance(raw, dict):
        return f"entry {index} ({raw.get('pipeline', '?')} {raw.get('model_id', '?')!r})"
    return f"entry {index}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    """The entry's field that an error is about, without pydantic's union-member tags."""
    parts: list[str] = []
    model: type[BaseModel] | None = ModelEntry
    item_model: type[BaseModel] | None = None  # of a list field, indexed next
    for part in loc:
        if isinstance(part, int) and item_model is not None:
            parts.append(str(part))
            model, item_model = item_model, None
            continue
        if model is None or not isinstance(part, str):
            break
        parts.append(part)  # a field, or an unknown name that the error is about
        if part not in model.model_fields:
            break
        annotation = model.model_fields[part].annotation
        model, item_model = _model_of(annotation), _model_of(*get_args(annotation)[:1])
        if get_origin(annotation) is not list:
            item_model = None
    return ".".join(parts) or "(entry)"


def _model_of(annotation: Any = None) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _format_validation_error(where: str, error: ValidationError) -> str:
    by_field: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for item in error.errors():
        field = _field_path(item["loc"])
        if item["msg"] not in by_field.setdefault(field, []):
            by_field[field].append(item["msg"])
        inputs.setdefault(field, item.get("input"))
    problems = [
        f"field '{field}': {' or '.join(messages)} (got {inputs[field]!r})"
        for field, messages in by_field.items()
    ]
    return f"{where}: " + "; ".join(problems)


def parse_entries(raw_entries: Any, source: str = "aiModels.json") -> list[ModelEntry]:
    """Validate raw JSON entries, raising ConfigError that names the entry and field."""
    if not isinstance(raw_entries, list):
        raise ConfigError(f"{source}: expected a JSON array of model entries")
    if not raw_entries:
        raise ConfigError(f"{source}: the array holds no model entries")
    entries, problems = [], []
    for index, raw in enumerate(raw_entries):
        where = f"{source} {_describe(index, raw)}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        try:
            entry = ModelEntry.model_validate(raw)
        except ValidationError as exc:
            problems.append(_format_validation_error(where, exc))
            continue
        unknown = sorted(set(raw) - LIVEPEER_FIELDS - {RUNNER_KEY})
        if unknown:
            # go-livepeer ignores unknown keys, so we only warn: a newer go-livepeer may add some.
            logger.warning("%s: ignoring unknown fields %s", where, unknown)
        entries.append(entry)
    if problems:
        raise ConfigError("\n".join(problems))
    return entries


def merge_entries(entries: list[ModelEntry], source: str = "aiModels.json") -> list[ServedModel]:
    """One ServedModel per (pipeline, model_id).

    Entries of the same model (e.g. one price per gateway) add their capacities up, as
    go-livepeer does; they must agree on `warm`, and at most one may carry `runner` settings.
    """
    groups: dict[tuple[Pipeline, str], list[tuple[int, ModelEntry]]] = {}
    for index, entry in enumerate(entries):
        groups.setdefault((entry.pipeline, entry.model_id), []).append((index, entry))

    served, problems = [], []
    for (pipeline, model_id), group in groups.items():
        where = f"{source} entries {[i for i, _ in group]} ({pipeline.value} {model_id!r})"
        if len({entry.warm for _, entry in group}) > 1:
            problems.append(f"{where}: field 'warm': entries of one model must agree")
            continue
        with_runner = [entry for _, entry in group if "runner" in entry.model_fields_set]
        if len(with_runner) > 1:
            problems.append(f"{where}: field 'runner': give it in one entry of the model only")
            continue
        first = group[0][1]
        runner = with_runner[0].runner if with_runner else first.runner
        try:
            flags = _merge_flags([entry for _, entry in group])
            runner, parsed = _check_flags(flags, pipeline, model_id, first.warm, runner, where)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        served.append(
            ServedModel(
                pipeline=pipeline,
                model_id=model_id,
                warm=first.warm,
                # go-livepeer counts capacity 0 of an external container as 1.
                capacity=sum(entry.capacity or 1 for _, entry in group),
                tokens=tuple(sorted({entry.token for _, entry in group if entry.token})),
                runner=runner,
                optimization_flags=flags,
                flags=parsed,
            )
        )
    if problems:
        raise ConfigError("\n".join(problems))
    _check_defaults(served, source)
    return served


def _merge_flags(entries: list[ModelEntry]) -> dict[str, OptimizationFlagValue]:
    """One model's flags from all its entries, which must not contradict each other."""
    flags: dict[str, OptimizationFlagValue] = {}
    for entry in entries:
        for name, value in entry.optimization_flags.items():
            if name in flags and str(flags[name]).lower() != str(value).lower():
                raise ConfigError(
                    f"field 'optimization_flags.{name}': entries of one model must agree "
                    f"(got {flags[name]!r} and {value!r})"
                )
            flags[name] = value
    return flags


def _check_flags(
    flags: dict[str, OptimizationFlagValue],
    pipeline: Pipeline,
    model_id: str,
    warm: bool,
    runner: RunnerSettings,
    where: str,
) -> tuple[RunnerSettings, OptimizationFlags]:
    """Check a model's optimization flags; returns its runner settings with BFLOAT16 applied,
    and the flags as parsed."""
    try:
        parsed = parse_optimization_flags(flags, pipeline=pipeline.value, model_id=model_id)
    except OptimizationFlagError as exc:
        raise ConfigError(f"{where}: field 'optimization_flags.{exc.flag}': {exc}") from exc
    if parsed.ignored:
        logger.warning("%s: optimization_flags %s have no effect here", where, list(parsed.ignored))
    if parsed.sfast and not warm:
        logger.warning(
            "%s: SFAST on a cold model: its first request waits for compiling; set warm: true",
            where,
        )
    if parsed.bfloat16:
        if runner.torch_dtype not in ("auto", "bfloat16"):
            raise ConfigError(
                f"{where}: field 'optimization_flags.BFLOAT16': contradicts runner.torch_dtype "
                f"{runner.torch_dtype!r}; keep one"
            )
        runner = runner.model_copy(update={"torch_dtype": "bfloat16"})
    return runner, parsed


def _check_defaults(served: list[ServedModel], source: str) -> None:
    for pipeline in {model.pipeline for model in served}:
        defaults = [m.model_id for m in served if m.pipeline == pipeline and m.runner.default]
        if len(defaults) > 1:
            raise ConfigError(
                f"{source}: field 'runner.default': {pipeline.value} has several defaults "
                f"{defaults}; mark one"
            )


def load_models_file(path: Path) -> list[ServedModel]:
    """Read and validate an aiModels.json file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the model configuration: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return merge_entries(parse_entries(raw, source), source)
