"""bench/modal_web.py at a tiny size: it serves both requests through the real adapter and
reports each one's CPU-seconds and memory (no figure is asserted: the CPU is shared)."""

from __future__ import annotations

import json
import sys

import pytest

from bench.modal_web import main


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_web_function_bench_reports_each_requests_cost(capsys):
    main(["--size", "64", "--requests", "2", "--burst", "2", "--hold", "0.01"])
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == 64 and report["date"] and report["machine"]
    kinds = {row["kind"]: row for row in report["results"]}
    assert set(kinds) == {"text-to-image", "image-to-image"}
    for row in kinds.values():
        assert row["cpu_s_per_request"] >= 0 and row["peak_rss_mib"] >= row["idle_rss_mib"]
        assert row["response_bytes"] > 0
    assert kinds["image-to-image"]["upload_bytes"] > 0
