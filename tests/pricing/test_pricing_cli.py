"""`python -m pricing`: tables, writing prices into aiModels.json, calibration, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from contract.aimodels import load_models_file, merge_entries, parse_entries
from pricing import aimodels
from pricing.__main__ import main
from pricing.results import RESULTS_FORMAT, load_results

REPO = Path(__file__).resolve().parents[2]

# Formatted the way operators write it: 4-space indent, a price in the docs' style, nested objects.
AIMODELS = """[
    {
        "pipeline": "text-to-image",
        "model_id": "stabilityai/sdxl-turbo",
        "url": "http://127.0.0.1:8000",
        "price_per_unit": 1.9073484e-08,
        "warm": true,
        "capacity": 4,
        "currency": "USD",
        "optimization_flags": {"SFAST": true, "DEEPCACHE": false},
        "runner": {"guidance_scale": 0, "num_inference_steps": 1, "max_queue": 0}
    },
    {
        "pipeline": "llm",
        "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "url": "http://127.0.0.1:8000",
        "token": "s3cret",
        "capacity": 8,
        "price_per_unit": 0.08,
        "pixels_per_unit": 1000000,
        "currency": "USD",
        "gateway": "0x0000000000000000000000000000000000000001"
    }
]
"""
WARM_POOL = ["--gpu", "H100", "--min-containers", "1", "--jobs-per-hour", "1800"]


@pytest.fixture
def models_file(tmp_path) -> Path:
    path = tmp_path / "aiModels.json"
    path.write_text(AIMODELS)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_prints_cost_and_prices_without_touching_the_file(models_file, capsys):
    code, out, err = run(
        capsys,
        "table",
        models_file,
        "--model",
        "stabilityai/sdxl-turbo",
        "--seconds-per-job",
        "0.181",
        *WARM_POOL,
        "--eth-usd",
        "3000",
    )
    assert code == 0, err
    # 2 s billed per job (one H100 all hour for 1800 jobs) = 0.002197275 USD for 262,144 px.
    assert "0.002197" in out and "262,144" in out
    assert '"price_per_unit": 1.048, "pixels_per_unit": 100000000, "currency": "USD"' in out
    assert "2.28x its cost" in out  # Livepeer's recommended 1.9073484e-08 USD per pixel
    assert '{"price": 54.63, "currency": "usd", "unit": "hour"}' in out
    assert "meta-llama" not in out  # filtered by --model
    assert models_file.read_text() == AIMODELS


def test_write_puts_prices_in_place_and_leaves_everything_else(models_file, capsys):
    code, out, err = run(
        capsys,
        "table",
        models_file,
        "--seconds-per-job",
        "0.5",
        *WARM_POOL,
        "--currency",
        "wei",
        "--eth-usd",
        "2500",
        "--write",
    )
    assert code == 0, err
    assert "wrote prices of 2 entries" in out
    text = models_file.read_text()
    before, after = json.loads(AIMODELS), json.loads(text)
    for old, new in zip(before, after, strict=True):
        # Same keys in the same order (price keys replaced where they stood), same values.
        assert list(new) == list(old) + [k for k in ("pixels_per_unit",) if k not in old]
        assert {k: v for k, v in new.items() if k not in aimodels.PRICE_FIELDS} == {
            k: v for k, v in old.items() if k not in aimodels.PRICE_FIELDS
        }
        assert isinstance(new["price_per_unit"], int | float)  # a JSON number, never a string
        assert isinstance(new["pixels_per_unit"], int) and new["pixels_per_unit"] > 0
        assert new["currency"] == "wei"
    # 0.5 s at 1800 jobs/hour on one warm H100 = 2 s billed = 0.002197275 USD per 512x512
    # image; x 1.25 / 262,144 px = 1.0477e-8 USD = 4,190,969.7 wei at 2500 USD/ETH.
    assert after[0]["price_per_unit"] == 4_191_000
    assert '\n        "optimization_flags": {\n            "SFAST": true,' in text  # own indent
    # Still a valid configuration, serving the same models.
    served = load_models_file(models_file)
    assert [m.key for m in served] == [m.key for m in merge_entries(parse_entries(before))]


def test_writing_again_gives_the_same_file(models_file, capsys):
    argv = ["table", models_file, "--seconds-per-job", "0.5", *WARM_POOL, "--write"]
    assert run(capsys, *argv)[0] == 0
    first = models_file.read_text()
    assert run(capsys, *argv)[0] == 0
    assert models_file.read_text() == first


def test_unpriced_fields_keep_their_exact_text(models_file, capsys):
    code, _, err = run(
        capsys,
        "table",
        models_file,
        "--model",
        "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "--seconds-per-job",
        "2",
        *WARM_POOL,
        "--write",
    )
    assert code == 0, err
    # The entry not priced keeps 1.9073484e-08 exactly as written, not 1.9073484E-8.
    assert '"price_per_unit": 1.9073484e-08,' in models_file.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{]", "not valid JSON at line 1"),
        ("[]", "holds no model entries"),
        ('{"pipeline": "llm"}', "expected a JSON array"),
        ('[{"model_id": "m"}]', "field 'pipeline'"),
        ('[{"pipeline": "text-to-pixels", "model_id": "m"}]', "field 'pipeline'"),
        (
            '[{"pipeline": "llm", "model_id": "m", "price_per_unit": "0.5e-2USD"}]',
            "field 'price_per_unit'",
        ),
        ('[{"pipeline": "llm", "model_id": "m", "pixels_per_unit": 0}]', "field 'pixels_per_unit'"),
        ('[{"pipeline": "llm", "model_id": "m", "model_id": "n"}]', "'model_id' appears twice"),
    ],
)
def test_invalid_files_are_refused_with_a_message_and_left_unchanged(
    tmp_path, capsys, content, message
):
    path = tmp_path / "aiModels.json"
    path.write_text(content)
    code, _, err = run(capsys, "table", path, "--seconds-per-job", "1", *WARM_POOL, "--write")
    assert code == 2
    assert err.startswith("pricing: error: ") and message in err
    assert path.read_text() == content


def test_a_failed_write_keeps_the_original_and_leaves_no_temporary_file(
    models_file, capsys, monkeypatch
):
    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(aimodels.os, "replace", broken_replace)
    code, _, err = run(
        capsys, "table", models_file, "--seconds-per-job", "1", *WARM_POOL, "--write"
    )
    assert code == 2 and "disk full" in err
    assert models_file.read_text() == AIMODELS
    assert [p.name for p in models_file.parent.iterdir()] == ["aiModels.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpu", "RTX-9090"], "unknown GPU 'RTX-9090': known GPUs are T4, L4, A10"),
        (["--gpu", "H100", "--gpu-price", "0"], "GPU price must be positive"),
        (
            ["--gpu", "H100", "--min-containers", "1", "--jobs-per-hour", "-5"],
            "jobs per hour must be positive",
        ),
        (["--gpu", "H100", "--min-containers", "1"], "give the expected jobs per hour"),
        (["--gpu", "H100", "--scaledown-window", "60"], "cold start seconds"),
        (["--min-containers", "1", "--jobs-per-hour", "60"], "which GPU"),
        ([*WARM_POOL, "--currency", "wei"], "needs the ETH/USD rate"),
        ([*WARM_POOL, "--eth-usd", "0"], "ETH/USD rate must be positive"),
        ([*WARM_POOL, "--margin", "-0.5"], "margin must not be negative"),
        ([*WARM_POOL, "--request", '{"widht": 512}'], "no field(s) ['widht']"),
    ],
)
def test_bad_inputs_are_clear_errors_never_a_price(models_file, capsys, argv, message):
    code, out, err = run(
        capsys,
        "table",
        models_file,
        "--model",
        "stabilityai/sdxl-turbo",
        "--seconds-per-job",
        "0.2",
        *argv,
    )
    assert code == 2 and message in err, err
    assert "price_per_unit" not in out


def test_zero_seconds_per_job_is_refused(models_file, capsys):
    code, _, err = run(capsys, "table", models_file, "--seconds-per-job", "0", *WARM_POOL)
    assert code == 2 and "seconds per job must be positive" in err


def test_an_entry_without_measurements_is_named(models_file, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"format": RESULTS_FORMAT, "results": []}))
    code, _, err = run(capsys, "table", models_file, "--results", results, *WARM_POOL)
    assert code == 2
    assert "entry 0 (text-to-image stabilityai/sdxl-turbo): no measured seconds" in err


def measurement(gpu: str, seconds: float, **fields) -> dict:
    return {
        "pipeline": "text-to-image",
        "model_id": "stabilityai/sdxl-turbo",
        "gpu": gpu,
        "request": {"width": 1024, "height": 1024},
        "seconds_per_job": seconds,
        "runs": 10,
        "cold_start_seconds": 29.1,
        "measured_at": "2026-11-22",
        "source": "test",
        **fields,
    }


def test_measurements_give_one_row_per_gpu_and_writing_needs_a_choice(
    models_file, tmp_path, capsys
):
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "format": RESULTS_FORMAT,
                "results": [measurement("H100", 0.5), measurement("L40S", 1.2)],
            }
        )
    )
    common = [
        "table",
        models_file,
        "--model",
        "stabilityai/sdxl-turbo",
        "--results",
        results,
        "--scaledown-window",
        "120",
    ]
    code, out, _ = run(capsys, *common)
    assert code == 0
    assert "\n  H100 " in out and "\n  L40S " in out and "1,048,576" in out
    # Every job cold: 0.5 + 29.1 + 120 s on the H100.
    assert "149.6" in out
    code, _, err = run(capsys, *common, "--write")
    assert code == 2 and "choose the GPU to write with --gpu" in err
    assert models_file.read_text() == AIMODELS
    assert run(capsys, *common, "--gpu", "L40S", "--write")[0] == 0
    assert json.loads(models_file.read_text())[0]["currency"] == "USD"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"format": "other/9", "results": []}, "field 'format'"),
        (
            {"format": RESULTS_FORMAT, "results": [measurement("H100", 0)]},
            "results.0.seconds_per_job",
        ),
        (
            {"format": RESULTS_FORMAT, "results": [measurement("H100", 1, pipeline="x")]},
            "results.0.pipeline",
        ),
        (
            {"format": RESULTS_FORMAT, "results": [measurement("H100", 1, extra=1)]},
            "results.0.extra",
        ),
    ],
)
def test_invalid_results_files_are_refused(models_file, tmp_path, capsys, document, message):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(document))
    code, _, err = run(capsys, "table", models_file, "--results", results, *WARM_POOL)
    assert code == 2 and message in err


def test_units_command_counts_as_go_livepeer(capsys):
    assert run(capsys, "units", "text-to-image")[1] == "262144\n"
    assert run(capsys, "units", "image-to-video", "--request", '{"fps": 24}')[1] == "14745600\n"
    assert run(capsys, "units", "upscale", "--input-size", "640x480")[1] == "307200\n"
    assert run(capsys, "units", "audio-to-text", "--audio-seconds", "2.9")[1] == "2000\n"
    assert run(capsys, "units", "llm")[1] == "256\n"  # the gateway's default max_tokens
    code, _, err = run(capsys, "units", "image-to-text")
    assert code == 2 and "input image's width and height" in err


def test_calibrate_times_the_real_pipeline_and_the_table_prices_from_it(tiny_sd, tmp_path, capsys):
    models = tmp_path / "aiModels.json"
    models.write_text(
        json.dumps(
            [
                {
                    "pipeline": "text-to-image",
                    "model_id": "test/tiny-sd",
                    "warm": True,
                    "runner": {"model_path": str(tiny_sd)},
                }
            ]
        )
    )
    results = tmp_path / "bench" / "results.json"
    code, out, err = run(
        capsys,
        "calibrate",
        models,
        "--model",
        "test/tiny-sd",
        "--device",
        "cpu",
        "--request",
        '{"prompt": "a lighthouse", "width": 64, "height": 64, '
        '"num_inference_steps": 1, "seed": 1}',
        "--runs",
        "2",
        "--warmup",
        "0",
        "--results",
        results,
    )
    assert code == 0, err
    [result] = load_results(results)
    assert (result.gpu, result.runs, len(result.samples)) == ("CPU", 2, 2)
    assert result.seconds_per_job > 0 and result.cold_start_seconds >= result.seconds_per_job
    assert result.request["width"] == 64 and "4,096 units per job" in out
    code, out, err = run(
        capsys,
        "table",
        models,
        "--results",
        results,
        "--gpu",
        "CPU",
        "--gpu-price",
        "0.0001",
        "--min-containers",
        "1",
        "--jobs-per-hour",
        "60",
    )
    assert code == 0, err
    assert "4,096" in out and "measured " in out
    # 60 s billed per job at 0.0001 + 0.0000016375 USD/s.
    assert str(Decimal("0.0001016375") * 60)[:7] in out


def test_the_module_runs_as_a_command():
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pricing",
            "units",
            "text-to-speech",
            "--request",
            '{"text": "héllo"}',
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "5000\n"
