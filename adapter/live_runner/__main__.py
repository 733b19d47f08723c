"""`python -m adapter.live_runner registration`: the static Live Runner registration.

    python -m adapter.live_runner registration [--output runners.json] [--public-url URL]
        [--results FILE] [--unit fixed|hour] [--margin 0.25] [--jobs-per-hour N]

reads the same settings (ADAPTER_* environment) and aiModels.json as the adapter and prints the
`{"runners": [...]}` document for go-livepeer's -liveRunnerConfig (or POST /registerLiveRunners):
one single-shot entry per served model, priced by `pricing/`. With --output the document is
written atomically (mode 0600: its URLs hold the path secret) and each price's derivation is
printed instead. See docs/live-runner.md.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapter.live_runner",
        description="go-livepeer Live Runner registration for the adapter's served models.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    registration = commands.add_parser(
        "registration", help='print (or write) the {"runners": [...]} document'
    )
    registration.add_argument("--output", type=Path, help="write it here, atomically")
    registration.add_argument(
        "--public-url",
        help="the door's address as the orchestrator reaches it (default ADAPTER_PUBLIC_URL)",
    )
    registration.add_argument(
        "--results",
        type=Path,
        help="measurements to price from (default ADAPTER_LIVE_RUNNER_RESULTS)",
    )
    registration.add_argument(
        "--unit",
        choices=("fixed", "hour"),
        help="price unit (default ADAPTER_LIVE_RUNNER_PRICE_UNIT, else fixed)",
    )
    registration.add_argument(
        "--margin",
        type=_decimal,
        help="markup over cost (default ADAPTER_LIVE_RUNNER_PRICE_MARGIN, else 0.25)",
    )
    registration.add_argument(
        "--jobs-per-hour",
        type=_decimal,
        help="expected load (default ADAPTER_LIVE_RUNNER_JOBS_PER_HOUR)",
    )
    return parser


def registration(args: argparse.Namespace) -> int:
    from adapter.app import load_models
    from adapter.live_runner.prices import PriceOptions
    from adapter.live_runner.registration import (
        build_document,
        configured_entries,
        render,
        write_atomically,
    )
    from adapter.live_runner.server import check_exposure
    from adapter.settings import LiveRunnerSettings, Settings
    from pricing.prices import LiveUnit

    overrides = {
        "public_url": args.public_url,
        "results": args.results,
        "price_unit": args.unit,
        "price_margin": args.margin,
        "jobs_per_hour": args.jobs_per_hour,
    }
    live = LiveRunnerSettings(
        **{key: value for key, value in overrides.items() if value is not None}
    )
    settings = Settings(live_runner=live)
    check_exposure(live)
    unit: LiveUnit = live.price_unit
    options = PriceOptions(
        unit=unit,
        margin=live.price_margin,
        results=live.results,
        jobs_per_hour=live.jobs_per_hour,
    )
    models = load_models(settings)
    document, quotes = build_document(settings, models, configured_entries(settings), options)
    text = render(document)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_atomically(args.output, text)
    for label, quote in quotes.items():
        print(f"{label}: {quote.price} USD per {quote.unit} ({quote.how})")
    print(f"wrote {len(document['runners'])} runner(s) to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from contract.errors import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return registration(args)
    except (ConfigError, ValidationError, ValueError, OSError) as exc:
        print(f"live_runner: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
