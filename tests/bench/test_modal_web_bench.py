"""bench/modal_web.py at a tiny size: it serves the three requests through the real adapter and
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
    assert set(kinds) == {"text-to-image", "image-to-image", "segment-anything-2"}
    for row in kinds.values():
        assert row["cpu_s_per_request"] >= 0 and row["peak_rss_mib"] >= row["idle_rss_mib"]
        assert row["response_bytes"] > 0
    assert kinds["image-to-image"]["upload_bytes"] > 0
    # SAM 2's answer: three 64x64 masks and three 256x256 logits, as the runner prints them.
    sam2 = kinds["segment-anything-2"]
    assert sam2["upload_bytes"] > 0
    assert sam2["response_bytes"] > 3 * 256 * 256 * 5  # at least "-1.0, " per logit
