"""The Docker fallback's files: compose.yaml validated by the Docker client where it has the
compose plugin, and its wiring checked against our own configuration loader everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from contract.aimodels import load_models_file

ROOT = Path(__file__).resolve().parents[2]


def compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(
    not compose_available(), reason="the docker client or its compose plugin is not installed here"
)
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ADAPTER_AUTH_TOKEN": "any-token"},
    )
    assert result.returncode == 0, result.stderr


def test_compose_wires_the_adapter_to_the_runner_over_http():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    runner, adapter = compose["services"]["runner"], compose["services"]["adapter"]
    assert adapter["environment"]["ADAPTER_BACKEND"] == "http"
    assert adapter["depends_on"]["runner"]["condition"] == "service_healthy"
    config_dir = ROOT / "examples/compose"

    runner_models = load_models_file(config_dir / "runner.aiModels.json")
    adapter_models = load_models_file(config_dir / "adapter.aiModels.json")
    assert [m.key for m in adapter_models] == [m.key for m in runner_models]
    for model in adapter_models:
        assert model.runner.upstream_url == "http://runner:8000"
        assert model.runner.upstream_token == runner["environment"]["ADAPTER_AUTH_TOKEN"]
    for service in (runner, adapter):
        mounted = service["environment"]["ADAPTER_MODELS_CONFIG"]
        assert mounted.startswith("/config/")
        assert (config_dir / Path(mounted).name).is_file()


def test_the_image_runs_the_same_app_as_the_plain_process():
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = 'CMD ["python", "-m", "adapter", "--host", "0.0.0.0", "--port", "8000"]'
    assert command in dockerfile
    assert '"torch==2.13.0"' in dockerfile
    for package in ("adapter", "functions", "pricing"):
        assert f"COPY {package} ./{package}" in dockerfile
        assert (ROOT / package / "__init__.py").is_file()
