"""`python -m bench`: our path and stock diffusers side by side, one process, one run.

    python -m bench --device cuda                      # every case at full size (an H100)
    python -m bench --device cuda --cases a,b --compile
    python -m bench --tiny                             # the CPU check of the harness (CI)
    python -m bench --device cpu --cases d,f           # the CPU-only cases at real sizes

Cases: (a) SDXL-Turbo 512x512 1 step, (b) SDXL-Lightning 1024x1024 4 steps, (c) SVD-xt
576x1024 25 frames 25 steps, (d) PNG data URL encoding, (e) cold start, (f) adapter overhead,
and optionally (u) the SD x4 upscaler. See BENCHMARKS.md for results and the method.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Under the git-ignored results folder: a device machine keeps ignored files between calls.
DEFAULT_MODELS = RESULTS_DIR / "models"
ALL_CASES = ("a", "b", "c", "d", "e", "f", "u")
DEFAULT_CASES = "a,b,c,d,e,f"


def _cases(text: str) -> list[str]:
    cases = [case.strip() for case in text.split(",") if case.strip()]
    unknown = sorted(set(cases) - set(ALL_CASES))
    if unknown or not cases:
        raise argparse.ArgumentTypeError(f"cases are among {', '.join(ALL_CASES)}; got {text!r}")
    return cases


def _variant(text: str) -> tuple[str, dict[str, Any]]:
    """NAME:field=value,... -> (name, FastPathOptions fields); booleans, ints, strings."""
    from functions.speed.fast_path import FastPathOptions

    name, _, settings = text.partition(":")
    known = {field.name for field in fields(FastPathOptions)}
    values: dict[str, Any] = {}
    for item in filter(None, settings.split(",")):
        key, _, raw = item.partition("=")
        if key not in known:
            raise argparse.ArgumentTypeError(f"{key!r} is not a fast-path option ({known})")
        lowered = raw.lower()
        values[key] = (
            lowered == "true"
            if lowered in ("true", "false")
            else None
            if lowered in ("", "none")
            else int(raw)
            if raw.isdigit()
            else raw
        )
    if not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME:option=value[,...], got {text!r}")
    return "ours+" + name, values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    parser.add_argument(
        "--cases",
        type=_cases,
        default=_cases(DEFAULT_CASES),
        help=f"comma-separated, among {','.join(ALL_CASES)} (default {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="tiny configs and sizes: checks the harness on a CPU in seconds",
    )
    parser.add_argument("--runs", type=int, help="timed runs per path (default per case)")
    parser.add_argument("--warmup", type=int, help="untimed runs per path (default per case)")
    parser.add_argument(
        "--models",
        type=Path,
        default=DEFAULT_MODELS,
        help=f"where the random-weight models are built (default {DEFAULT_MODELS})",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time ours with torch.compile (variant ours+compile; cold "
        "start with a warm cache)",
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        help="compiler cache directory (default <results-dir>/inductor-cache)",
    )
    parser.add_argument(
        "--variant",
        type=_variant,
        action="append",
        default=[],
        metavar="NAME:OPTION=VALUE,...",
        help="another variant of ours to time, e.g. cl:channels_last=true",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=4,
        help="case (f): the model's capacity, the second concurrency level",
    )
    parser.add_argument("--overhead-requests", type=int, help="case (f): requests per block")
    parser.add_argument("--cold-runs", type=int, help="case (e): cold starts per path")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default torch's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from bench import report
    from bench.timing import matrix_rate
    from functions.device import pick_device
    from functions.speed.fast_path import FastPathOptions

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    compile_cache = args.compile_cache or args.results_dir / "inductor-cache"
    variants = {"ours": FastPathOptions()}
    if args.compile:
        variants["ours+compile"] = FastPathOptions(
            compile_mode="default", compile_cache_dir=compile_cache
        )
    for name, values in args.variant:
        try:
            variants[name] = replace(FastPathOptions(), **values)
        except ValueError as exc:
            raise SystemExit(f"python -m bench: error: --variant {name}: {exc}") from None

    run: dict[str, Any] = {
        "format": report.RUN_FORMAT,
        "created_at": report.now(),
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "mode": "tiny" if args.tiny else "full",
        "note": report.TIMING_NOTE,
        "environment": report.environment(device),
        "variants": {
            name: {field.name: str(getattr(options, field.name)) for field in fields(options)}
            for name, options in variants.items()
        },
        "cases": {},
    }
    run["matrix_rate"] = matrix_rate(device)
    print(
        f"device {run['environment']['device_name']} ({run['environment']['gpu']}), matrix "
        f"rate {run['matrix_rate']['flop_per_s'] / 1e12:.1f} TFLOP/s",
        flush=True,
    )

    for key in args.cases:
        print(f"case ({key}) ...", end=" ", flush=True)
        started = time.perf_counter()
        run["cases"][key] = _run_one(
            key, args, device, dtype, variants, run["matrix_rate"], compile_cache
        )
        run["cases"][key]["wall_s"] = time.perf_counter() - started
        print(f"{run['cases'][key]['wall_s']:.1f} s", flush=True)
        gc.collect()

    stamp = run["created_at"].replace(":", "").replace("-", "")
    run_path = report.write_json(args.results_dir / f"run-{stamp}.json", run)
    seconds_path = None
    if any(key in run["cases"] for key in ("a", "b", "c", "u")):
        seconds_path = report.write_json(
            args.results_dir / "seconds-per-job.json", report.seconds_per_job(run)
        )
    rows = report.table_rows(run)
    (args.results_dir / f"run-{stamp}.md").write_text(
        report.render_markdown(rows) + "\n", encoding="utf-8"
    )
    print()
    print(report.render_text(rows))
    print(f"\nresults: {run_path}" + (f"\nseconds per job: {seconds_path}" if seconds_path else ""))
    return 0


def _run_one(
    key: str,
    args: argparse.Namespace,
    device: Any,
    dtype: Any,
    variants: dict[str, Any],
    rate: dict[str, Any],
    compile_cache: Path,
) -> dict[str, Any]:
    if key == "d":
        from bench.png_case import run_png_case

        return run_png_case(tiny=args.tiny, runs=args.runs, warmup=args.warmup)
    if key == "e":
        from bench.architectures import ensure_model
        from bench.cold_start import run_cold_start
        from bench.diffusion_cases import CASES

        case = CASES["a"]
        folder = ensure_model(
            args.models, case.architecture, tiny=args.tiny, device=device, dtype=dtype
        )
        return run_cold_start(
            folder=folder,
            model_id=case.model_id,
            device=str(device),
            size=case.params(args.tiny)["width"],
            runs=args.cold_runs or (1 if args.tiny else 3),
            compile_cache=compile_cache if args.compile else None,
        )
    if key == "f":
        from bench.overhead import run_overhead

        return run_overhead(
            capacity=args.capacity,
            requests=args.overhead_requests or (20 if args.tiny else 200),
            rounds=1 if args.tiny else 2,
            size=512,
        )
    from bench.diffusion_cases import CASES, run_case

    return run_case(
        CASES[key],
        models=args.models,
        device=device,
        dtype=dtype,
        tiny=args.tiny,
        runs=args.runs,
        warmup=args.warmup,
        variants=variants,
        rate=rate,
    )


if __name__ == "__main__":
    sys.exit(main())
