"""Price every entry of an aiModels.json: measurements + options -> rows -> a text table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, get_origin

from pydantic import ValidationError

from contract.aimodels import ModelEntry
from contract.errors import UnitsError
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.schemas import RequestModel, Upload
from contract.units import RequestFacts, request_units
from pricing.cost import Deployment, JobCost, PricingError, Workload, job_cost
from pricing.cost import recommended_usd_per_unit as with_margin
from pricing.gpus import MIN_CPU_CORES, GpuPrice, gpu_price, parse_gpu
from pricing.prices import (
    ConfigPrice,
    Currency,
    LiveUnit,
    config_price,
    configured_usd_per_unit,
    live_json,
    live_price_info,
    live_wei,
)
from pricing.results import Measurement

# What a go-livepeer gateway sends when its client leaves these out (server/ai_process.go).
GATEWAY_DEFAULTS: dict[Pipeline, dict[str, Any]] = {
    Pipeline.TEXT_TO_IMAGE: {"height": 512, "width": 512, "num_images_per_prompt": 1},
    Pipeline.LLM: {"max_tokens": 256},
}


@dataclass(frozen=True)
class Options:
    """Everything the operator tells the pricing command besides the file."""

    gpu: str | None = None
    gpu_price: Decimal | None = None  # USD per second per GPU
    seconds_per_job: Decimal | None = None
    cold_start_s: Decimal | None = None
    min_containers: int = 0
    scaledown_window_s: Decimal | None = None
    jobs_per_hour: Decimal | None = None
    cpu_cores: Decimal = MIN_CPU_CORES
    memory_gib: Decimal = Decimal(0)
    request: dict[str, Any] = field(default_factory=dict)
    facts: RequestFacts = field(default_factory=RequestFacts)
    margin: Decimal = Decimal("0.25")
    currency: Currency = "USD"
    eth_usd: Decimal | None = None


@dataclass(frozen=True)
class Row:
    """One way of serving the entry (a GPU, a measured job) and its price."""

    gpu: GpuPrice
    seconds_source: str
    request: dict[str, Any]
    cost: JobCost
    recommended_usd_per_unit: Decimal
    config: ConfigPrice
    live: list[dict[str, object]]

    @property
    def units_per_job(self) -> int:
        return self.cost.workload.units_per_job


@dataclass(frozen=True)
class EntryReport:
    index: int
    entry: ModelEntry
    rows: list[Row]
    current_usd_per_unit: Decimal | None


def typical_request(
    pipeline: Pipeline, fields: dict[str, Any], upload: bytes | None = None
) -> RequestModel:
    """A request of `pipeline` with `fields`, the gateway's defaults filling what is left out.

    Its file field carries `upload`, or empty bytes when only its units are wanted (the
    facts the units need, such as the image size, are given separately).
    """
    spec = PIPELINE_SPECS[pipeline]
    known = spec.request.model_fields
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise PricingError(
            f"{pipeline.value} requests have no field(s) {unknown}; fields: {', '.join(known)}"
        )
    data: dict[str, Any] = {**GATEWAY_DEFAULTS.get(pipeline, {}), **fields}
    for name, info in known.items():
        if name in data or not info.is_required():
            continue
        if info.annotation is Upload:
            data[name] = Upload(upload or b"", filename="typical")
        else:
            # Text and messages do not count, except a text-to-speech text (given or refused).
            data[name] = [] if get_origin(info.annotation) is list else ""
    try:
        return spec.request.model_validate(data)
    except ValidationError as exc:
        raise PricingError(f"the typical {pipeline.value} request is invalid: {exc}") from exc


def _described(request: RequestModel) -> dict[str, Any]:
    return {
        name: getattr(request, name)
        for name in sorted(request.model_fields_set)
        if not isinstance(getattr(request, name), Upload) and getattr(request, name) != ""
    }


def _units(
    pipeline: Pipeline, fields: dict[str, Any], facts: RequestFacts
) -> tuple[int, dict[str, Any]]:
    request = typical_request(pipeline, fields)
    try:
        units = request_units(request, facts)
    except UnitsError as exc:
        raise PricingError(f"the typical job cannot be counted: {exc}") from exc
    if units <= 0:
        raise PricingError(
            f"the typical {pipeline.value} job is worth {units} units: describe a real one "
            "(--request, --input-size, --audio-seconds)"
        )
    return units, _described(request)


def _row(
    entry: ModelEntry,
    gpu: GpuPrice,
    seconds: Decimal,
    source: str,
    cold_start_s: Decimal | None,
    fields: dict[str, Any],
    facts: RequestFacts,
    options: Options,
) -> Row:
    units, described = _units(entry.pipeline, fields, facts)
    deployment = Deployment(
        gpu=gpu,
        cpu_cores=options.cpu_cores,
        memory_gib=options.memory_gib,
        min_containers=options.min_containers,
        scaledown_window_s=options.scaledown_window_s,
    )
    cold = options.cold_start_s if options.cold_start_s is not None else cold_start_s
    workload = Workload(seconds, units, cold, options.jobs_per_hour)
    cost = job_cost(deployment, workload)
    recommended = with_margin(cost, options.margin)
    live_units: tuple[LiveUnit, ...] = ("hour", "720p", "fixed")
    live = [live_price_info(cost, options.margin, unit) for unit in live_units]
    if options.eth_usd is not None:
        for info in live:
            live_wei(info, options.eth_usd)
    return Row(
        gpu=gpu,
        seconds_source=source,
        request=described,
        cost=cost,
        recommended_usd_per_unit=recommended,
        config=config_price(recommended, options.currency, options.eth_usd),
        live=live,
    )


def price_entry(
    index: int, entry: ModelEntry, measurements: list[Measurement], options: Options
) -> EntryReport:
    """Rows for one entry: one per matching measurement, or one from --seconds-per-job."""
    where = f"entry {index} ({entry.pipeline.value} {entry.model_id})"
    try:
        rows = _rows(entry, measurements, options)
    except PricingError as exc:
        raise PricingError(f"{where}: {exc}") from exc
    current = None
    if entry.price_per_unit is not None:
        current = configured_usd_per_unit(
            Decimal(str(entry.price_per_unit)),
            entry.pixels_per_unit or 1,
            entry.currency,
            options.eth_usd,
        )
    return EntryReport(index, entry, rows, current)


def _rows(entry: ModelEntry, measurements: list[Measurement], options: Options) -> list[Row]:
    if options.seconds_per_job is not None:
        if options.gpu is None:
            raise PricingError("say which GPU --seconds-per-job was measured on (--gpu)")
        gpu = gpu_price(options.gpu, options.gpu_price)
        return [
            _row(
                entry,
                gpu,
                options.seconds_per_job,
                "given with --seconds-per-job",
                options.cold_start_s,
                options.request,
                options.facts,
                options,
            )
        ]
    if options.request or options.facts != RequestFacts():
        raise PricingError(
            "--request, --input-size and --audio-seconds describe the job of --seconds-per-job; "
            "a measurement already records the job it timed"
        )
    matching = [
        m for m in measurements if m.pipeline == entry.pipeline and m.model_id == entry.model_id
    ]
    if options.gpu is not None:
        wanted = parse_gpu(options.gpu)[0]
        matching = [m for m in matching if parse_gpu(m.gpu)[0] == wanted]
    elif options.gpu_price is not None:
        raise PricingError("--gpu-price is the price of one GPU kind: name it with --gpu")
    if not matching:
        on = f" on {options.gpu}" if options.gpu else ""
        raise PricingError(
            f"no measured seconds per job{on}: run `python -m pricing calibrate`, add a "
            "benchmark result (--results), or give --seconds-per-job with --gpu"
        )
    rows = []
    for measurement in matching:
        gpu = gpu_price(options.gpu or measurement.gpu, options.gpu_price)
        source = f"measured {measurement.measured_at}, median of {measurement.runs}"
        if measurement.source:
            source += f" ({measurement.source})"
        rows.append(
            _row(
                entry,
                gpu,
                measurement.seconds_per_job,
                source,
                measurement.cold_start_seconds,
                measurement.request,
                measurement.input.facts(),
                options,
            )
        )
    return rows


def _g(value: Decimal, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def render(report: EntryReport, options: Options) -> str:
    entry = report.entry
    lines = [
        f"entry {report.index}: {entry.pipeline.value} {entry.model_id}"
        + (f" (gateway {entry.gateway})" if entry.gateway else "")
        + f"; unit: {PIPELINE_SPECS[entry.pipeline].unit_name}"
    ]
    header = [
        "GPU",
        "USD/s",
        "s/job",
        "billed s/job",
        "USD/job",
        "units/job",
        "break-even USD/unit",
        "recommended USD/unit",
        "wei/unit",
        "job earns USD",
    ]
    table = [header]
    for row in report.rows:
        earns = row.config.per_unit_of_work * row.units_per_job
        earns_usd = configured_usd_per_unit(
            row.config.price_per_unit,
            row.config.pixels_per_unit,
            row.config.currency,
            options.eth_usd,
        )
        wei = "-"
        if options.eth_usd is not None and earns_usd is not None:
            # Of the price written (rounded up to 4 digits), which is what go-livepeer debits.
            wei = _g(earns_usd / options.eth_usd * Decimal(10) ** 18)
        table.append(
            [
                row.gpu.label,
                _g(row.cost.deployment.usd_per_second, 5),
                _g(row.cost.busy_s),
                _g(row.cost.billed_s),
                _g(row.cost.usd_per_job),
                f"{row.units_per_job:,}",
                _g(row.cost.break_even_usd_per_unit),
                _g(row.recommended_usd_per_unit),
                wei,
                _g(earns_usd * row.units_per_job) if earns_usd is not None else _g(earns),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines += [
        ("  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))).rstrip()
        for line in table
    ]
    for row in report.rows:
        cost = row.cost
        lines.append(f"  {row.gpu.label}: typical job {json.dumps(row.request, default=str)}")
        lines.append(f"    seconds per job: {row.seconds_source}; GPU price: {row.gpu.source}")
        lines.append(
            f"    billed per job: {_g(cost.busy_s)} s busy + {_g(cost.cold_s)} s cold start + "
            f"{_g(cost.idle_s)} s idle ({_scaling(options)})"
        )
        lines.append(f"    aiModels.json: {row.config.fields()}")
        lines.append(_current(report, row))
        live = " | ".join(live_json(info) for info in row.live)
        lines.append(f"    Live Runner price_info: {live}")
        lines += [f"    warning: {text}" for text in cost.warnings]
    return "\n".join(lines)


def _current(report: EntryReport, row: Row) -> str:
    entry = report.entry
    if entry.price_per_unit is None:
        return "    current price: none (go-livepeer would use -pricePerUnit)"
    if report.current_usd_per_unit is None:
        return (
            f"    current price: {entry.price_per_unit} {entry.currency or 'wei'} per "
            f"{entry.pixels_per_unit or 1} units (give --eth-usd to compare it with the cost)"
        )
    now = report.current_usd_per_unit * row.units_per_job
    ratio = now / row.cost.usd_per_job
    verdict = " - BELOW COST, every job loses money" if ratio < 1 else ""
    return (
        f"    current price: {_g(report.current_usd_per_unit)} USD/unit, {_g(now)} USD per "
        f"typical job, {_g(ratio, 3)}x its cost{verdict}"
    )


def _scaling(options: Options) -> str:
    rate = f"{options.jobs_per_hour} jobs/hour" if options.jobs_per_hour else "no rate given"
    if options.min_containers:
        return f"min_containers={options.min_containers}, {rate}"
    return f"min_containers=0, scaledown_window={options.scaledown_window_s} s, {rate}"
