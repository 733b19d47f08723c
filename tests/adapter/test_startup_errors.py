"""A start-up error is one clear line on stderr and a non-zero exit, under both entrypoints; the
traceback only with ADAPTER_DEBUG=1 (issue 12, item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.loading import ModelNotFoundError, resolve_model_path
from tests.support.runner_process import ROOT, free_port

COMMANDS = {
    "launcher": [sys.executable, "-m", "adapter"],
    "uvicorn": [sys.executable, "-m", "uvicorn", "adapter.main:app"],
}


def start(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    environ.pop("AUTH_TOKEN", None)
    return subprocess.run(
        [*COMMANDS[command], "--port", str(free_port())],
        cwd=ROOT,
        env={**environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def broken_config(tmp_path: Path) -> Path:
    path = tmp_path / "aiModels.json"
    path.write_text('[{"pipeline": "text-to-image", "model_id": "a/b"}')
    return path


CASES = {
    "bad-json": (lambda tmp: {"ADAPTER_MODELS_CONFIG": str(broken_config(tmp))}, "not valid JSON"),
    "missing-file": (
        lambda tmp: {"ADAPTER_MODELS_CONFIG": str(tmp / "nowhere.json")},
        "No such file or directory",
    ),
    "bad-setting": (
        lambda tmp: {"ADAPTER_MAX_INFERENCE_STEPS": "-3"},
        "ADAPTER_MAX_INFERENCE_STEPS: Input should be greater than 0 (got '-3')",
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_a_start_up_error_is_one_line_on_stderr_and_a_non_zero_exit(tmp_path, command, case):
    make_env, expected = CASES[case]
    result = start(command, **make_env(tmp_path))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("modal-ai-runner: cannot start: ")
    assert expected in lines[0]
    assert "ADAPTER_DEBUG=1" in lines[0]


def test_adapter_debug_shows_the_traceback(tmp_path):
    config = broken_config(tmp_path)
    result = start("launcher", ADAPTER_MODELS_CONFIG=str(config), ADAPTER_DEBUG="1")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConfigError" in result.stderr


def test_the_missing_weights_hint_names_the_current_download_command(tmp_path):
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model_path("org/missing-model", None, tmp_path)
    assert f"hf download org/missing-model --cache-dir {tmp_path}" in str(caught.value)
    assert "huggingface-cli" not in str(caught.value)
