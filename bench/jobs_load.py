"""`python -m bench.jobs_load`: the jobs API under load, end to end.

    python -m bench.jobs_load                                   # 1,000 jobs, SQLite
    python -m bench.jobs_load --database-url postgresql://postgres@127.0.0.1:5432/test
    python -m bench.jobs_load --jobs 200 --concurrency 64 --pipeline text-to-image

Starts the adapter (`python -m adapter`) in its own process on a free port, serving the built-in
demo models (tiny random weights) on the CPU, with its jobs on SQLite in a fresh data folder, or
in a fresh schema of the PostgreSQL database named by --database-url (dropped after). Submits
--jobs jobs (POST /v1/jobs, bearer token, an Idempotency-Key each) from --concurrency concurrent
clients, timing each submit to its 202; then polls GET /v1/jobs (status filters, cursor pages)
until every job has ended, or --timeout. Prints a table and writes
bench/results/jobs-load-<time>.json (and .md); exits 1 unless every job reached a terminal
state. See docs/benchmarks.md for the method and BENCHMARKS.md for results.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import shlex
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.jobs_client import PIPELINES, TERMINAL, Workload, poll_until_ended, submit_all
from bench.jobs_server import AdapterProcess, create_pg_schema, drop_pg_schema, schema_url
from bench.jobs_table import environment, markdown, text_table, write_json

FORMAT = "modal-ai-runner-bench-jobs-load/1"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DEMO_DIR = RESULTS_DIR / "demo"  # git-ignored; built on the first run, kept after
# The queue must hold every job of the run, so no submit is refused (the setting's default).
DEFAULT_MAX_QUEUED = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jobs_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to submit (1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent submits (32)")
    parser.add_argument(
        "--pipeline",
        choices=PIPELINES,
        default="mix",
        help="mix (default): 8 of 10 text-to-image, 1 image-to-image, 1 llm; or one of them",
    )
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (64)")
    parser.add_argument(
        "--database-url",
        default="",
        help="postgresql://... : jobs in a fresh schema of this database (dropped after); "
        "default: SQLite in the temporary data folder",
    )
    parser.add_argument(
        "--runner-concurrency",
        type=int,
        help="ADAPTER_JOBS_CONCURRENCY, jobs run at once (default: the adapter's own, the "
        "served models' capacity summed)",
    )
    parser.add_argument(
        "--server-threads", type=int, help="OMP_NUM_THREADS of the adapter (default: torch's)"
    )
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds (2)")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="most seconds to wait for every job (1800)"
    )
    parser.add_argument("--start-timeout", type=float, default=600.0, help="adapter start (600)")
    parser.add_argument("--demo-dir", type=Path, default=DEFAULT_DEMO_DIR)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (and schema)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99, max and mean (None for an empty list)."""
    if not values:
        return dict.fromkeys(("p50", "p95", "p99", "max", "mean"))
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def server_env(
    args: argparse.Namespace, data_dir: Path, database_url: str, token: str
) -> dict[str, str]:
    env = {
        "ADAPTER_DEVICE": "cpu",
        "ADAPTER_DEMO_DIR": str(args.demo_dir),
        "ADAPTER_DATA_DIR": str(data_dir),
        "ADAPTER_AUTH_TOKEN": token,
        "ADAPTER_JOBS_ENABLED": "true",
        "ADAPTER_JOBS_DATABASE_URL": database_url,
        "ADAPTER_JOBS_MAX_QUEUED": str(max(DEFAULT_MAX_QUEUED, args.jobs)),
    }
    if args.runner_concurrency:
        env["ADAPTER_JOBS_CONCURRENCY"] = str(args.runner_concurrency)
    return env


def summarize(args: argparse.Namespace, submitted: Any, polled: Any) -> dict[str, Any]:
    jobs = list(polled.final.values())
    statuses = Counter(str(job.get("status")) for job in jobs)
    by_pipeline: dict[str, Counter[str]] = {}
    for job in jobs:
        by_pipeline.setdefault(str(job.get("pipeline")), Counter())[str(job.get("status"))] += 1
    finished = [t for t in (_time(job.get("finished_at")) for job in jobs) if t is not None]
    waits: list[float] = []
    runs: dict[str, list[float]] = {}  # pipeline -> started_at to finished_at of its jobs
    longest: list[dict[str, Any]] = []
    for job in jobs:
        created, started = _time(job.get("created_at")), _time(job.get("started_at"))
        ended = _time(job.get("finished_at"))
        if created and started:
            waits.append((started - created).total_seconds())
        if started and ended:
            run_s = (ended - started).total_seconds()
            runs.setdefault(str(job.get("pipeline")), []).append(run_s)
            longest.append({"id": job["id"], "pipeline": job.get("pipeline"), "run_s": run_s})
    longest.sort(key=lambda item: -float(item["run_s"]))
    window_s = (max(finished) - submitted.first_start).total_seconds() if finished else None
    not_terminal = args.jobs - sum(statuses[status] for status in TERMINAL)
    accepted = len(submitted.ids)
    return {
        "submit": {
            "accepted": accepted,
            "rejected_429": submitted.rejected,
            "transport_retries": submitted.retried_errors,
            "errors": submitted.errors[:20],
            "error_count": len(submitted.errors),
            "latency_s": percentiles(submitted.latencies_s),
            "wall_s": submitted.wall_s,
            "jobs_per_s": accepted / submitted.wall_s if submitted.wall_s else None,
        },
        "completion": {
            # From the first submit to the last job's finished_at (the server's clock, the
            # same machine's), so the poll's interval does not count.
            "window_s": window_s,
            "jobs_per_s": len(finished) / window_s if window_s else None,
            "observed_s": submitted.wall_s + polled.observed_s,
            "queue_wait_s": percentiles(waits),
            # "running" counts from the claim: a claimed job waiting for its model's slot too.
            "run_s": percentiles([value for values in runs.values() for value in values]),
            "run_s_by_pipeline": {name: percentiles(v) for name, v in sorted(runs.items())},
            "longest_runs": longest[:5],
        },
        "poll": {"rounds": polled.rounds, "pages": polled.pages},
        "statuses": dict(sorted(statuses.items())),
        "by_pipeline": {name: dict(sorted(c.items())) for name, c in sorted(by_pipeline.items())},
        "retried_jobs": sum(1 for job in jobs if int(job.get("attempts") or 0) > 1),
        "retried": [
            {key: job.get(key) for key in ("id", "pipeline", "attempts", "status", "error")}
            for job in jobs
            if int(job.get("attempts") or 0) > 1
        ][:20],
        "not_terminal": not_terminal,
        "ok": not_terminal == 0 and not submitted.errors,
    }


async def drive(args: argparse.Namespace, url: str, token: str, run_id: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=timeout
    ) as client:
        workload = Workload(args.pipeline, run_id, size=args.size)
        workload.request(0 if args.pipeline != "mix" else 8)  # the upload built before timing
        submitted = await submit_all(client, workload, args.jobs, args.concurrency)
        if not args.quiet:
            print(
                f"submitted {len(submitted.ids)} in {submitted.wall_s:.1f} s "
                f"({len(submitted.errors)} errors)",
                flush=True,
            )

        def progress(rounds: int, left: dict[str, int], elapsed: float) -> None:
            if not args.quiet:
                print(f"  poll {rounds}: {left} left after {elapsed:.0f} s", flush=True)

        polled = await poll_until_ended(
            client,
            submitted.ids,
            submitted.first_start - timedelta(seconds=1),
            args.timeout,
            args.poll_interval,
            progress,
        )
    return summarize(args, submitted, polled)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(given)
    if args.jobs < 1 or args.concurrency < 1:
        raise SystemExit("python -m bench.jobs_load: --jobs and --concurrency must be >= 1")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="jobs-load-"))
    token, run_id = secrets.token_urlsafe(24), secrets.token_hex(4)
    schema = None
    database_url = ""
    if args.database_url:
        schema = create_pg_schema(args.database_url)
        database_url = schema_url(args.database_url, schema)
    env = server_env(args, data_dir, database_url, token)
    server = AdapterProcess(env, data_dir / "adapter.log", threads=args.server_threads)
    load_before = os.getloadavg()
    try:
        startup_s = server.start(args.start_timeout)
        if not args.quiet:
            print(f"adapter up on {server.url} in {startup_s:.1f} s", flush=True)
        results = asyncio.run(drive(args, server.url, token, run_id))
    finally:
        server.stop()
        if schema is not None and not args.keep:
            drop_pg_schema(args.database_url, schema)
        log_tail = server.log_tail(2000)
        warnings = server.warnings()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    settings = {key: value for key, value in env.items() if key != "ADAPTER_AUTH_TOKEN"}
    if schema is not None:  # the URL as given, with the schema apart (never a password)
        from adapter.jobs.store.postgres import where_it_is

        settings["ADAPTER_JOBS_DATABASE_URL"] = f"<{where_it_is(args.database_url)}>"
    run: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": f"python -m bench.jobs_load {shlex.join(given)}",
        "environment": environment(load_before),
        "config": {
            "jobs": args.jobs,
            "concurrency": args.concurrency,
            "pipeline": args.pipeline,
            "size": args.size,
            "database": "postgresql" if schema else "sqlite",
            "poll_interval_s": args.poll_interval,
            "timeout_s": args.timeout,
            "server_settings": settings,
            "data_dir": str(data_dir) if args.keep else None,
            "schema": schema if args.keep else None,
        },
        "startup_s": startup_s,
        **results,
    }
    run["adapter_warnings"] = warnings  # what the adapter logged at WARNING and above
    if not run["ok"]:
        run["adapter_log_tail"] = log_tail
    stamp = run["created_at"].replace(":", "").replace("-", "")
    path = args.results_dir / f"jobs-load-{stamp}-{run['config']['database']}.json"
    write_json(path, run)
    path.with_suffix(".md").write_text(markdown(run) + "\n", encoding="utf-8")
    print()
    print(text_table(run))
    print(f"\nresults: {path}")
    if not run["ok"]:
        print(
            f"FAILED: {run['not_terminal']} jobs did not reach a terminal state, "
            f"{run['submit']['error_count']} submits failed",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
