"""The jobs load test's report: the machine it ran on, and its table as text and Markdown.

Apart from bench/report.py, which imports torch: the load test's client never needs it, and on
a machine this small its import would weigh on the measurement's first seconds."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("fastapi", "starlette", "uvicorn", "httpx", "pydantic", "psycopg", "torch")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit the run's code is at ("+dirty" with uncommitted changes), where git says."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """The machine, and its load average (1, 5, 15 min) before and after the run: a shared
    machine's other work shows there."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_avg_before": [round(value, 2) for value in load_before],
        "load_avg_after": [round(value, 2) for value in os.getloadavg()],
        "versions": versions,
        "git_commit": git_commit(),
    }


def write_json(path: Path, body: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} jobs/s"


def rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    env, config = run["environment"], run["config"]
    submit, done = run["submit"], run["completion"]
    latency, wait, took = submit["latency_s"], done["queue_wait_s"], done["run_s"]
    load_after = env["load_avg_after"][0]
    statuses = ", ".join(f"{name} {count}" for name, count in run["statuses"].items())
    return [
        ("date", run["created_at"]),
        ("machine", f"{env['cpu_model']}, {env['cpu_count']} cores"),
        ("load average before / after", f"{env['load_avg_before'][0]} / {load_after}"),
        ("store", config["database"]),
        ("jobs, client concurrency", f"{config['jobs']}, {config['concurrency']}"),
        ("pipelines", config["pipeline"]),
        (
            "submit latency p50 / p95 / p99 / max",
            " / ".join(_ms(latency[key]) for key in ("p50", "p95", "p99", "max")),
        ),
        ("submit throughput", f"{_rate(submit['jobs_per_s'])} ({_s(submit['wall_s'])})"),
        (
            "completion throughput (first submit to last end)",
            f"{_rate(done['jobs_per_s'])} ({_s(done['window_s'])})",
        ),
        ("queue wait p50 / p95", f"{_s(wait['p50'])} / {_s(wait['p95'])}"),
        (
            "run time (claim to end) p50 / p95 / max",
            f"{_ms(took['p50'])} / {_ms(took['p95'])} / {_s(took['max'])}",
        ),
        ("final statuses", statuses or "-"),
        ("retried jobs (attempts > 1)", str(run["retried_jobs"])),
        ("429s, submit errors", f"{submit['rejected_429']}, {submit['error_count']}"),
        ("not terminal", str(run["not_terminal"])),
    ]


def text_table(run: dict[str, Any]) -> str:
    table = rows(run)
    width = max(len(name) for name, _ in table)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in table)


def markdown(run: dict[str, Any]) -> str:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows(run)]
    return "\n".join(lines)
