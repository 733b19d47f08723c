"""The jobs load test on a few jobs: it starts a real adapter process on the demo models, every
job ends, and its report has its figures (no speed is asserted: the CPU is shared). On SQLite,
and on the test PostgreSQL server in a schema of its own."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.jobs_client import pipeline_of
from bench.jobs_load import main, percentiles, summarize

LATENCY_KEYS = {"p50", "p95", "p99", "max", "mean"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo folder for the module: the first adapter builds the models, the next reuses."""
    return tmp_path_factory.mktemp("demo")


def run_load(tmp_path: Path, demo_dir: Path, jobs: int, *extra: str) -> dict[str, Any]:
    results = tmp_path / "results"
    argv = ["--jobs", str(jobs), "--concurrency", "4", "--poll-interval", "0.3", "--quiet"]
    argv += ["--timeout", "600", "--demo-dir", str(demo_dir), "--results-dir", str(results)]
    argv += ["--server-threads", "1", *extra]
    assert main(argv) == 0
    [path] = results.glob("jobs-load-*.json")
    assert path.with_suffix(".md").read_text().startswith("| measure | value |")
    run: dict[str, Any] = json.loads(path.read_text())
    return run


def positive(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def check_report(run: dict[str, Any], jobs: int, database: str) -> None:
    assert run["format"] == "modal-ai-runner-bench-jobs-load/1"
    assert run["created_at"].endswith("Z")
    assert run["command"].startswith("python -m bench.jobs_load --jobs")
    env = run["environment"]
    assert env["cpu_model"] and env["cpu_count"] >= 1 and len(env["load_avg_after"]) == 3
    config = run["config"]
    assert (config["jobs"], config["database"]) == (jobs, database)
    assert "ADAPTER_AUTH_TOKEN" not in config["server_settings"]  # never the token
    assert config["server_settings"]["ADAPTER_JOBS_MAX_QUEUED"] == "1000"
    submit = run["submit"]
    assert (submit["accepted"], submit["error_count"], submit["rejected_429"]) == (jobs, 0, 0)
    assert set(submit["latency_s"]) == LATENCY_KEYS
    latency = submit["latency_s"]
    assert all(positive(latency[key]) for key in LATENCY_KEYS)
    assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert positive(submit["jobs_per_s"])
    done = run["completion"]
    assert positive(done["jobs_per_s"]) and positive(done["window_s"])
    assert done["window_s"] <= done["observed_s"] + 1.0  # the poll sees the end after it
    assert set(done["queue_wait_s"]) == set(done["run_s"]) == LATENCY_KEYS
    # Every job ended, and with the demo models every one succeeded.
    assert run["statuses"] == {"succeeded": jobs}
    assert run["not_terminal"] == 0 and run["ok"] is True
    wanted = {pipeline_of("mix", index) for index in range(jobs)}
    assert set(run["by_pipeline"]) == wanted
    assert sum(sum(counts.values()) for counts in run["by_pipeline"].values()) == jobs
    assert run["poll"]["pages"] >= 3 and positive(run["startup_s"])
    assert isinstance(run["adapter_warnings"], list) and isinstance(run["retried"], list)


def test_twenty_jobs_on_sqlite_all_end(tmp_path: Path, demo_dir: Path) -> None:
    run = run_load(tmp_path, demo_dir, 20)
    check_report(run, 20, "sqlite")
    assert run["config"]["data_dir"] is None  # the temporary data folder was removed


def test_ten_jobs_on_postgresql_all_end_in_a_schema_of_their_own(
    tmp_path: Path, demo_dir: Path
) -> None:
    from tests.support.jobs_store import PG_URL, pg_unreachable_reason, raw_rows
    from tests.support.services import unavailable

    reason = pg_unreachable_reason()
    if reason is not None:
        unavailable(reason)
    run = run_load(tmp_path, demo_dir, 10, "--database-url", PG_URL, "--keep")
    schema = run["config"]["schema"]
    shutil.rmtree(run["config"]["data_dir"])
    try:
        check_report(run, 10, "postgresql")
        assert schema.startswith("jobs_bench_")
        assert "postgres@" not in json.dumps(run["config"])  # the URL is shown without its user
        count = f"SELECT COUNT(*) FROM \"{schema}\".jobs WHERE status = 'succeeded'"
        assert raw_rows(PG_URL, count) == [(10,)]  # --keep kept it: the jobs are really there
    finally:
        raw_rows(PG_URL, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_job_not_ended_fails_the_run() -> None:
    args = SimpleNamespace(jobs=3)
    submitted = SimpleNamespace(
        ids=["a", "b", "c"], latencies_s=[0.01] * 3, first_start=None, wall_s=0.1,
        rejected=0, retried_errors=0, errors=[],
    )  # fmt: skip
    final = {
        "a": {"status": "succeeded", "pipeline": "llm"},
        "b": {"status": "running", "pipeline": "llm"},
        "c": {"status": "missing"},
    }
    polled = SimpleNamespace(final=final, observed_s=1.0, rounds=1, pages=3)
    summary = summarize(args, submitted, polled)  # type: ignore[arg-type]
    assert summary["not_terminal"] == 2 and summary["ok"] is False
    assert summary["statuses"] == {"missing": 1, "running": 1, "succeeded": 1}


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0,
                                   "mean": 50.5}  # fmt: skip
    assert percentiles([]) == dict.fromkeys(LATENCY_KEYS)
