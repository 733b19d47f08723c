"""`python -m adapter.live_runner registration`: the document go-livepeer's -liveRunnerConfig
takes, checked against its rules (LIVE-RUNNER.md §5), with prices from `pricing/`, recomputed
here from their formulas."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from decimal import ROUND_CEILING, Decimal

import pytest

from adapter.live_runner.registration import document_problems
from tests.live_runner.support import assert_valid, run
from tests.support.runner_process import ROOT

D = Decimal
SECRET = "path-secret-0123456789abcdef"
H100_RATE = D("0.001097") + D("0.125") * D("0.0000131")  # GPU + Modal's minimum 0.125 core


def ceil4(value: Decimal) -> Decimal:
    """Rounded up to 4 significant digits, as pricing.prices.round_up does."""
    return value.quantize(D(1).scaleb(value.adjusted() - 3), rounding=ROUND_CEILING)


def price(entry: dict) -> Decimal:
    return D(repr(entry["price_info"]["price"]))


def test_the_demo_registration_from_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env |= {"ADAPTER_DEMO_DIR": str(tmp_path / "demo"), "ADAPTER_LIVE_RUNNER_PORT": "8935"}
    done = subprocess.run(
        [sys.executable, "-m", "adapter.live_runner", "registration"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert_valid(document)
    by_app = {entry["app"]: entry for entry in document["runners"]}
    assert len(by_app) == 10
    t2i = by_app["text-to-image/demo/tiny-sd"]
    assert t2i["runner_url"] == "http://127.0.0.1:8935/text-to-image/demo/tiny-sd"
    # Livepeer's recommended price per unit x the default request's units, rounded up.
    expected = {
        "text-to-image/demo/tiny-sd": D("1.9073484e-08") * 512 * 512,
        "image-to-image/demo/tiny-sd-img2img": D("1.9073484e-08") * 512 * 512,
        "upscale/demo/tiny-sd-x4-upscaler": D("1.9073484e-08") * 512 * 512,
        "image-to-video/demo/tiny-svd": D("1.3563368e-08") * 576 * 1024 * 25,
        "audio-to-text/demo/tiny-whisper": D("2e-08") * 60_000,
        "llm/demo/tiny-llm": D("8e-08") * 256,
        "segment-anything-2/demo/tiny-sam2": D("3.22e-11") * 512 * 512,
        # text-to-speech: a default text of 100 characters
        "image-to-text/demo/tiny-blip": D("2.5e-10") * 512 * 512,
        "text-to-speech/demo/tiny-vits": D("1.5e-09") * 1000 * 100,
        # Ours: image-to-video's recommended price per pixel x frame, of 480x832x81.
        "text-to-video/demo/tiny-wan": D("1.3563368e-08") * 480 * 832 * 81,
    }
    assert {app: price(entry) for app, entry in by_app.items()} == {
        app: ceil4(value) for app, value in expected.items()
    }
    assert price(t2i) == D("0.005")


def multi_model_file(tmp_path) -> tuple[str, str]:
    entries = [
        {
            "pipeline": "text-to-image",
            "model_id": "stabilityai/sdxl-turbo",
            "warm": True,
            "capacity": 2,
            "price_per_unit": 1.171,
            "pixels_per_unit": 100000000,
            "currency": "USD",
            "token": "entry-token-never-public",
        },
        # The same model for one gateway at another price: the default gateway's is used.
        {
            "pipeline": "text-to-image",
            "model_id": "stabilityai/sdxl-turbo",
            "warm": True,
            "capacity": 1,
            "price_per_unit": 9,
            "pixels_per_unit": 1,
            "currency": "USD",
            "gateway": "0xabc",
        },
        {
            "pipeline": "llm",
            "model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "capacity": 1,
            "runner": {
                "max_in_flight": 3,
                "modal": {"gpu": "H100", "min_containers": 0, "scaledown_window": 60},
            },
        },
        {
            "pipeline": "audio-to-text",
            "model_id": "openai/whisper-large-v3",
            "capacity": 1,
            "price_per_unit": 2e-08,
            "currency": "USD",
        },
    ]
    results = {
        "format": "modal-ai-runner-bench/1",
        "results": [
            {
                "pipeline": "llm",
                "model_id": "meta-llama/Llama-3.1-8B-Instruct",
                "gpu": "H100",
                "request": {"max_tokens": 256},
                "seconds_per_job": 0.5,
                "runs": 5,
                "cold_start_seconds": 10,
                "measured_at": "2026-11-30T00:00:00Z",
            }
        ],
    }
    models = tmp_path / "aiModels.json"
    models.write_text(json.dumps(entries))
    measured = tmp_path / "calibration.json"
    measured.write_text(json.dumps(results))
    return str(models), str(measured)


def test_a_multi_model_file_priced_from_entries_and_measurements(tmp_path, monkeypatch, capsys):
    models, measured = multi_model_file(tmp_path)
    code, out, err = run(
        monkeypatch,
        capsys,
        "--results",
        measured,
        ADAPTER_MODELS_CONFIG=models,
        ADAPTER_PUBLIC_URL="http://adapter:8935",
        ADAPTER_LIVE_RUNNER_PATH_SECRET=SECRET,
        ADAPTER_AUTH_TOKEN="global-token-never-public",
    )
    assert code == 0, err
    document = json.loads(out)
    assert_valid(document, (SECRET, "entry-token-never-public", "global-token-never-public"))
    by_app = {entry["app"]: entry for entry in document["runners"]}
    sdxl = by_app["text-to-image/stabilityai/sdxl-turbo"]
    assert sdxl["label"] == "text-to-image--stabilityai--sdxl-turbo"
    assert (
        sdxl["runner_url"] == f"http://adapter:8935/{SECRET}/text-to-image/stabilityai/sdxl-turbo"
    )
    assert sdxl["capacity"] == 3  # the two entries' capacities add up, as go-livepeer adds them
    # The entry's USD per pixel x the 512x512 of the gateway's default request.
    assert price(sdxl) == ceil4(D("1.171") / 100000000 * 512 * 512) == D("0.003070")
    whisper = by_app["audio-to-text/openai/whisper-large-v3"]
    assert price(whisper) == ceil4(D("2e-08") * 60 * 1000)
    # Measured: Modal's bill for one cold job (t + cold start + the scale-down window) + 25 %.
    llm = by_app["llm/meta-llama/Llama-3.1-8B-Instruct"]
    assert llm["capacity"] == 3  # runner.max_in_flight: what the adapter runs at once
    usd_per_job = H100_RATE * (D("0.5") + 10 + 60)
    assert price(llm) == ceil4(usd_per_job * D("1.25"))
    assert {e["price_info"]["unit"] for e in document["runners"]} == {"fixed"}

    # Per hour (needs a measurement), with the operator's margin.
    code, out, err = run(
        monkeypatch,
        capsys,
        "--results",
        measured,
        "--unit",
        "hour",
        "--margin",
        "0.5",
        ADAPTER_MODELS_CONFIG=models,
        ADAPTER_PUBLIC_URL="http://adapter:8935",
        ADAPTER_LIVE_RUNNER_PATH_SECRET=SECRET,
    )
    assert code == 2 and "a price per hour needs the model's seconds per job" in err
    assert "text-to-image/stabilityai/sdxl-turbo" in err


def test_hour_prices_from_a_measurement(tmp_path, monkeypatch, capsys):
    _models, measured = multi_model_file(tmp_path)
    entry = {
        "pipeline": "llm",
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "runner": {"modal": {"gpu": "H100", "min_containers": 0, "scaledown_window": 60}},
    }
    models = tmp_path / "llm.json"
    models.write_text(json.dumps([entry]))
    code, out, err = run(
        monkeypatch,
        capsys,
        "--unit",
        "hour",
        "--margin",
        "0.5",
        ADAPTER_MODELS_CONFIG=str(models),
        ADAPTER_LIVE_RUNNER_RESULTS=measured,
        ADAPTER_LIVE_RUNNER_PORT="8935",
    )
    assert code == 0, err
    (llm,) = json.loads(out)["runners"]
    usd_per_job = H100_RATE * (D("0.5") + 10 + 60)
    assert llm["price_info"]["unit"] == "hour"
    assert price(llm) == ceil4(usd_per_job / D("0.5") * 3600 * D("1.5"))
    assert "gpu" not in llm  # the local backend on the CPU has no GPU to name


def test_written_atomically_for_its_owner_only(tmp_path, monkeypatch, capsys):
    models, measured = multi_model_file(tmp_path)
    target = tmp_path / "config" / "runners.json"
    env = {
        "ADAPTER_MODELS_CONFIG": models,
        "ADAPTER_LIVE_RUNNER_RESULTS": measured,
        "ADAPTER_LIVE_RUNNER_PORT": "8935",
        "ADAPTER_LIVE_RUNNER_PATH_SECRET": SECRET,
    }
    code, printed, _err = run(monkeypatch, capsys, **env)
    code, out, err = run(monkeypatch, capsys, "--output", str(target), **env)
    assert code == 0, err
    assert target.read_text() == printed
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["runners.json"]
    # What it prints instead: how each price was reached, and never the secret.
    assert "USD per fixed" in out and "measured 0.5 s per job on H100" in out
    assert SECRET not in out


def test_a_model_without_any_price_is_named(tmp_path, monkeypatch, capsys):
    models = tmp_path / "aiModels.json"
    models.write_text(
        json.dumps(
            [
                {"pipeline": "text-to-image", "model_id": "a/unpriced"},
                {
                    "pipeline": "upscale",
                    "model_id": "b/in-wei",
                    "price_per_unit": 5,
                    "currency": "wei",
                },
            ]
        )
    )
    code, out, err = run(
        monkeypatch, capsys, ADAPTER_MODELS_CONFIG=str(models), ADAPTER_LIVE_RUNNER_PORT="8935"
    )
    assert code == 2 and out == ""
    assert "text-to-image/a/unpriced: no price" in err
    assert "upscale/b/in-wei: its price is in 'wei'" in err


def test_no_address_to_register(tmp_path, monkeypatch, capsys):
    code, _out, err = run(
        monkeypatch,
        capsys,
        ADAPTER_LIVE_RUNNER_SERVE_ON_MAIN="true",
        ADAPTER_LIVE_RUNNER_PATH_SECRET=SECRET,
        ADAPTER_DEMO_DIR=str(tmp_path),
    )
    assert code == 2 and "ADAPTER_PUBLIC_URL is not set" in err
    code, _out, err = run(
        monkeypatch,
        capsys,
        ADAPTER_LIVE_RUNNER_PORT="8935",
        ADAPTER_LIVE_RUNNER_HOST="0.0.0.0",
        ADAPTER_DEMO_DIR=str(tmp_path),
    )
    assert code == 2 and "not a loopback address" in err


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"label": " "}, "label must be a non-empty trimmed string"),
        ({"health_url": "health"}, "health_url must be an absolute"),
        ({"runner_url": "/relative"}, "runner_url must be an absolute"),
        ({"healthy_status_code": 600}, "healthy_status_code"),
        ({"metadata": "x" * 1025}, "metadata"),
        ({"metadata": SECRET}, "a public field holds a secret"),
        ({"mode": "batch"}, "mode"),
        ({"capacity": -1}, "capacity"),
        ({"price_info": {"price": 0, "unit": "fixed"}}, "price must be a positive decimal"),
        ({"price_info": {"price": 1, "currency": "eth"}}, "currency must be usd"),
        ({"price_info": {"price": 1, "unit": "token"}}, "unit must be one of"),
    ],
)
def test_the_rules_checked_before_printing(change, problem):
    entry = {
        "label": "a",
        "app": "text-to-image/m",
        "runner_url": "http://r:1/a",
        "health_url": "http://r:1/a/health",
        "price_info": {"price": 1},
    }
    assert document_problems({"runners": [entry]}, [SECRET]) == []
    problems = document_problems({"runners": [{**entry, **change}]}, [SECRET])
    assert any(problem in p for p in problems), problems
    assert "not unique" in " ".join(document_problems({"runners": [entry, entry]}))
