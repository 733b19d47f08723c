"""`python -m pricing`: what to charge for each model of an aiModels.json.

    python -m pricing table aiModels.json --results bench/results/calibration.json \\
        --min-containers 1 --jobs-per-hour 1800 --eth-usd 3000 [--write]
    python -m pricing calibrate aiModels.json --model stabilityai/sdxl-turbo --runs 10
    python -m pricing units text-to-image --request '{"width": 1024, "height": 1024}'

See docs/pricing.md for the cost model and a worked example.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from contract.aimodels import ServedModel, merge_entries
from contract.errors import ConfigError
from contract.pipelines import Pipeline
from contract.units import RequestFacts, request_units
from pricing.aimodels import read_aimodels, write_prices
from pricing.cost import PricingError
from pricing.gpus import known_gpus
from pricing.prices import CURRENCIES
from pricing.report import Options, price_entry, render, typical_request
from pricing.results import Measurement, load_results, save_results

DEFAULT_RESULTS = Path("bench/results/calibration.json")


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) * int(height) == 0:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1024x768, got {text!r}")
    return int(width), int(height)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--request is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--request must be a JSON object of request fields")
    return value


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--request",
        type=_json_object,
        default={},
        help="the job's request fields as JSON (files left out)",
    )
    parser.add_argument(
        "--input-size",
        type=_size,
        metavar="WxH",
        help="size of the job's input image (multipart image pipelines)",
    )
    parser.add_argument(
        "--audio-seconds", type=_decimal, help="length of the job's input audio (audio-to-text)"
    )


def _facts(args: argparse.Namespace) -> RequestFacts:
    width, height = args.input_size or (None, None)
    audio_ms = None if args.audio_seconds is None else args.audio_seconds * 1000
    return RequestFacts(width, height, audio_ms)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pricing",
        description="What to charge for each model of an aiModels.json (docs/pricing.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    table = commands.add_parser("table", help="price each entry; optionally write the prices")
    table.add_argument("aimodels", type=Path, help="the orchestrator's aiModels.json")
    table.add_argument("--model", action="append", default=[], help="only this model_id")
    table.add_argument(
        "--pipeline", action="append", default=[], type=Pipeline, help="only this pipeline"
    )
    source = table.add_mutually_exclusive_group()
    source.add_argument(
        "--results",
        type=Path,
        action="append",
        default=[],
        help="measurement file(s) from calibrate or the bench harness",
    )
    source.add_argument(
        "--seconds-per-job", type=_decimal, help="container seconds of one warm job (with --gpu)"
    )
    table.add_argument(
        "--gpu", help=f"Modal GPU kind, e.g. H100 or H100:2 ({', '.join(known_gpus())})"
    )
    table.add_argument(
        "--gpu-price",
        type=_decimal,
        help="USD per second of one GPU (overrides the built-in table)",
    )
    table.add_argument(
        "--cold-start-seconds",
        type=_decimal,
        help="container start to first result (overrides measurements)",
    )
    table.add_argument(
        "--min-containers",
        type=int,
        default=0,
        help="warm containers Modal keeps running (default 0)",
    )
    table.add_argument(
        "--scaledown-window",
        type=_decimal,
        metavar="SECONDS",
        help="idle seconds before Modal stops a container (min_containers=0)",
    )
    table.add_argument("--jobs-per-hour", type=_decimal, help="expected load")
    table.add_argument(
        "--cpu-cores",
        type=_decimal,
        default=Decimal("0.125"),
        help="CPU cores a container reserves (default Modal's minimum 0.125)",
    )
    table.add_argument(
        "--memory-gib",
        type=_decimal,
        default=Decimal(0),
        help="memory a container reserves, GiB (default 0)",
    )
    _add_job_arguments(table)
    table.add_argument(
        "--margin",
        type=_decimal,
        default=Decimal("0.25"),
        help="markup over cost for the recommended price (default 0.25 = 25%%)",
    )
    table.add_argument(
        "--currency",
        choices=CURRENCIES,
        default="USD",
        help="currency of the written price (USD is converted by go-livepeer)",
    )
    table.add_argument("--eth-usd", type=_decimal, help="USD per ETH, for wei and eth prices")
    table.add_argument(
        "--write",
        action="store_true",
        help="write price_per_unit, pixels_per_unit and currency into the file",
    )

    calibrate = commands.add_parser("calibrate", help="time an entry's pipeline on this device")
    calibrate.add_argument("aimodels", type=Path)
    calibrate.add_argument("--model", required=True, help="model_id of the entry to time")
    calibrate.add_argument(
        "--pipeline", type=Pipeline, help="needed if the model_id serves several pipelines"
    )
    _add_job_arguments(calibrate)
    calibrate.add_argument("--input", type=Path, help="the input file (image or audio)")
    calibrate.add_argument("--runs", type=int, default=5)
    calibrate.add_argument("--warmup", type=int, default=1)
    calibrate.add_argument("--gpu", help="Modal GPU kind of this device (detected if omitted)")
    calibrate.add_argument("--device", help="cpu, cuda or cuda:N (default ADAPTER_DEVICE)")
    calibrate.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"file the measurement is added to (default {DEFAULT_RESULTS})",
    )

    units = commands.add_parser("units", help="the units go-livepeer charges for a request")
    units.add_argument("pipeline", type=Pipeline)
    _add_job_arguments(units)
    return parser


def _table(args: argparse.Namespace) -> int:
    file = read_aimodels(args.aimodels)
    measurements: list[Measurement] = []
    for path in args.results:
        measurements += load_results(path)
    options = Options(
        gpu=args.gpu,
        gpu_price=args.gpu_price,
        seconds_per_job=args.seconds_per_job,
        cold_start_s=args.cold_start_seconds,
        min_containers=args.min_containers,
        scaledown_window_s=args.scaledown_window,
        jobs_per_hour=args.jobs_per_hour,
        cpu_cores=args.cpu_cores,
        memory_gib=args.memory_gib,
        request=args.request,
        facts=_facts(args),
        margin=args.margin,
        currency=args.currency,
        eth_usd=args.eth_usd,
    )
    selected = [
        (index, entry)
        for index, entry in enumerate(file.entries)
        if (not args.model or entry.model_id in args.model)
        and (not args.pipeline or entry.pipeline in args.pipeline)
    ]
    if not selected:
        raise PricingError(f"{args.aimodels}: no entry matches --model/--pipeline")
    reports = [price_entry(index, entry, measurements, options) for index, entry in selected]
    print("\n\n".join(render(report, options) for report in reports))
    if args.write:
        several = [r for r in reports if len(r.rows) != 1]
        if several:
            raise PricingError(
                "several prices for entr"
                + ("ies " if len(several) > 1 else "y ")
                + ", ".join(str(r.index) for r in several)
                + ": choose the GPU to write with --gpu"
            )
        write_prices(file, {report.index: report.rows[0].config for report in reports})
        print(
            f"\nwrote prices of {len(reports)} entr{'ies' if len(reports) > 1 else 'y'} "
            f"into {args.aimodels}"
        )
    return 0


def _served(args: argparse.Namespace) -> ServedModel:
    file = read_aimodels(args.aimodels)
    served = merge_entries(file.entries, str(args.aimodels))
    matching = [
        model
        for model in served
        if model.model_id == args.model
        and (args.pipeline is None or model.pipeline == args.pipeline)
    ]
    if len(matching) != 1:
        found = "no entry" if not matching else "several pipelines; give --pipeline"
        raise PricingError(f"{args.aimodels}: model {args.model!r}: {found}")
    return matching[0]


def _calibrate(args: argparse.Namespace) -> int:
    from adapter.settings import Settings
    from pricing.calibrate import calibrate

    model = _served(args)
    upload = args.input.read_bytes() if args.input else None
    request = typical_request(model.pipeline, args.request, upload)
    facts = _facts(args)
    units = request_units(request, facts)  # refuse a job whose units cannot be counted
    settings = Settings() if args.device is None else Settings(device=args.device)
    measurement = calibrate(model, request, facts, settings, args.runs, args.warmup, args.gpu)
    save_results(args.results, [measurement])
    print(
        f"{model.pipeline.value} {model.model_id} on {measurement.gpu} "
        f"({measurement.device_name}): {measurement.seconds_per_job} s per job "
        f"(median of {measurement.runs}), cold start {measurement.cold_start_seconds} s, "
        f"{units:,} units per job; added to {args.results}"
    )
    return 0


def _units(args: argparse.Namespace) -> int:
    request = typical_request(args.pipeline, args.request)
    print(request_units(request, _facts(args)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"table": _table, "calibrate": _calibrate, "units": _units}
    try:
        return handlers[args.command](args)
    except (ValueError, ConfigError, OSError) as exc:
        print(f"pricing: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
