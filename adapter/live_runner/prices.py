"""Each app's Live Runner `price_info` (USD), computed by `pricing/` from the model's cost.

Two sources, in this order:

1. A measurement of the model (a results file of `python -m pricing calibrate` or the bench,
   ADAPTER_LIVE_RUNNER_RESULTS): its seconds per job on its GPU give the job's Modal cost under
   the entry's `runner.modal` deployment (min_containers, scaledown_window), and
   `pricing.prices.live_price_info` raises it by the margin: `fixed` is one job's cost, `hour`
   that cost over the job's seconds, scaled to an hour.
2. The entry's own aiModels.json price in USD (`price_per_unit / pixels_per_unit` per unit):
   `fixed` is that price times go-livepeer's units of the pipeline's default request (the
   gateway's defaults; an uploaded image of DEFAULT_INPUT_SIDE squared, audio of
   DEFAULT_AUDIO_SECONDS, a text-to-speech text of DEFAULT_TTS_CHARS), rounded up to 4
   significant digits. It already holds the operator's margin, so none is added.
3. A built-in demo model (random weights, `runner.demo`) with neither: Livepeer's recommended
   USD price per unit (RUNNER-CONTRACT.md §9) in place of the entry's, as in 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from contract.aimodels import ModelEntry, ServedModel
from contract.errors import ConfigError, UnitsError
from contract.pipelines import PIPELINE_SPECS, Pipeline
from contract.units import RequestFacts, request_units
from pricing.cost import Deployment, PricingError, Workload, job_cost
from pricing.gpus import UnknownGpuError, gpu_price, parse_gpu
from pricing.prices import LiveUnit, live_price_info, round_up
from pricing.report import typical_request
from pricing.results import Measurement, ResultsError, find_measurements, load_results

DEFAULT_INPUT_SIDE = 512
DEFAULT_AUDIO_SECONDS = 60
# The gateway sends no default text: a default text-to-speech request says a sentence or two.
DEFAULT_TTS_CHARS = 100


@dataclass(frozen=True)
class PriceOptions:
    unit: LiveUnit = "fixed"
    margin: Decimal = Decimal("0.25")
    results: Path | None = None
    jobs_per_hour: Decimal | None = None


@dataclass(frozen=True)
class Quote:
    """A price_info and how it was reached (for the operator, never for the orchestrator)."""

    price: Decimal
    unit: LiveUnit
    how: str

    @property
    def price_info(self) -> dict[str, object]:
        return {"price": self.price, "currency": "usd", "unit": self.unit}


def default_facts(pipeline: Pipeline) -> RequestFacts:
    """What the default request of a pipeline uploads, for its units."""
    if PIPELINE_SPECS[pipeline].uploads_image:
        return RequestFacts(input_width=DEFAULT_INPUT_SIDE, input_height=DEFAULT_INPUT_SIDE)
    if pipeline is Pipeline.AUDIO_TO_TEXT:
        return RequestFacts(audio_duration_ms=DEFAULT_AUDIO_SECONDS * 1000)
    return RequestFacts()


def default_units(pipeline: Pipeline) -> int:
    """go-livepeer's units of the pipeline's default request (see the module docstring)."""
    fields = {"text": "x" * DEFAULT_TTS_CHARS} if pipeline is Pipeline.TEXT_TO_SPEECH else {}
    return request_units(typical_request(pipeline, fields), default_facts(pipeline))


def entry_usd_per_unit(entry: ModelEntry) -> Decimal | None:
    """The entry's price per unit of work in USD; None when it has none."""
    if entry.price_per_unit is None or not entry.price_per_unit:
        return None
    if entry.currency.upper() != "USD":
        raise PricingError(
            f"its price is in {entry.currency or 'wei'!r}; a Live Runner price is in USD: give "
            'the entry a USD price (currency "USD") or a measurement'
        )
    return Decimal(str(entry.price_per_unit)) / (entry.pixels_per_unit or 1)


def _pick(model: ServedModel, found: list[Measurement]) -> Measurement:
    wanted = parse_gpu(model.runner.modal.gpu)[0]
    on_gpu = [m for m in found if parse_gpu(m.gpu)[0] == wanted]
    if on_gpu:
        return on_gpu[-1]  # the latest added
    if len(found) == 1:
        return found[0]
    gpus = ", ".join(sorted({m.gpu for m in found}))
    raise PricingError(
        f"measurements on several GPUs ({gpus}) and none on its runner.modal.gpu {wanted}: "
        "keep one in the results file"
    )


def measured_quote(model: ServedModel, measurement: Measurement, options: PriceOptions) -> Quote:
    modal = model.runner.modal
    min_containers = modal.min_containers
    if min_containers is None:
        min_containers = 1 if model.warm else 0
    if min_containers and options.jobs_per_hour is None:
        raise PricingError(
            f"its {min_containers} warm container(s) (runner.modal.min_containers, 1 for a warm "
            "entry) cost the same whatever the load: give the expected load to share that cost "
            "among jobs (ADAPTER_LIVE_RUNNER_JOBS_PER_HOUR, or --jobs-per-hour)"
        )
    deployment = Deployment(
        gpu=gpu_price(measurement.gpu),
        min_containers=min_containers,
        scaledown_window_s=Decimal(modal.scaledown_window),
    )
    request = typical_request(model.pipeline, measurement.request)
    units = request_units(request, measurement.input.facts())
    workload = Workload(
        measurement.seconds_per_job, units, measurement.cold_start_seconds, options.jobs_per_hour
    )
    info = live_price_info(job_cost(deployment, workload), options.margin, options.unit)
    price = info["price"]
    assert isinstance(price, Decimal)
    return Quote(
        price,
        options.unit,
        f"measured {measurement.seconds_per_job} s per job on {measurement.gpu} "
        f"({measurement.measured_at}), min_containers={min_containers}, margin {options.margin}",
    )


def quote(
    model: ServedModel,
    entries: list[ModelEntry],
    measurements: list[Measurement],
    options: PriceOptions,
) -> Quote:
    """The model's price (see the module docstring); PricingError says what is missing."""
    found = find_measurements(measurements, model.pipeline, model.model_id)
    if found:
        return measured_quote(model, _pick(model, found), options)
    own = [e for e in entries if (e.pipeline, e.model_id) == (model.pipeline, model.model_id)]
    # One price per gateway is possible; the Live Runner has one: the default gateway's.
    own.sort(key=lambda e: e.gateway not in ("", "default"))
    usd_per_unit = next(
        (price for price in map(entry_usd_per_unit, own) if price is not None), None
    )
    source = "aiModels.json price"
    if usd_per_unit is None and model.runner.demo:
        usd_per_unit = PIPELINE_SPECS[model.pipeline].recommended_usd_per_unit
        source = "demo model: Livepeer's recommended price"
    if usd_per_unit is None:
        raise PricingError(
            "no price: add a measurement of it to the results file (ADAPTER_LIVE_RUNNER_RESULTS, "
            "made by `python -m pricing calibrate`) or a USD price_per_unit to its entry"
        )
    if options.unit != "fixed":
        raise PricingError(
            f"a price per {options.unit} needs the model's seconds per job: add a measurement "
            "(ADAPTER_LIVE_RUNNER_RESULTS) or use ADAPTER_LIVE_RUNNER_PRICE_UNIT=fixed"
        )
    units = default_units(model.pipeline)
    return Quote(
        round_up(usd_per_unit * units),
        "fixed",
        f"{source} {usd_per_unit} USD per unit x {units} units of the default request",
    )


def quote_all(
    models: list[ServedModel], entries: list[ModelEntry], options: PriceOptions
) -> dict[str, Quote]:
    """Every model's quote by `ServedModel.key`; ConfigError lists every model without one."""
    try:
        measurements = load_results(options.results) if options.results else []
    except ResultsError as exc:
        raise ConfigError(f"ADAPTER_LIVE_RUNNER_RESULTS: {exc}") from exc
    quotes, problems = {}, []
    for model in models:
        try:
            quotes[model.key] = quote(model, entries, measurements, options)
        except (PricingError, UnitsError, UnknownGpuError) as exc:
            problems.append(f"{model.key}: {exc}")
    if problems:
        raise ConfigError("Live Runner prices:\n" + "\n".join(problems))
    return quotes
