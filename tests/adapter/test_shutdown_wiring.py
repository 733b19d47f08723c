"""The drain deadline fits inside each platform's own kill delay (issue 12, item 6): the
process must be gone, its requests answered, before the platform cuts it."""

from __future__ import annotations

import re

import yaml

from adapter.app import BACKEND_CLOSE_S
from adapter.settings import Settings
from tests.support.runner_process import ROOT

DOCKER_STOP_S = 10  # `docker stop` and compose's default stop_grace_period
MODAL_EXIT_GRACE_S = 30  # Modal's exit grace on preemption; Kubernetes' default grace period


def test_the_default_drain_fits_modal_and_kubernetes():
    assert Settings.model_fields["shutdown_drain_s"].default + BACKEND_CLOSE_S < MODAL_EXIT_GRACE_S


def test_the_image_drain_fits_docker_stop():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (drain,) = re.findall(r"^ENV ADAPTER_SHUTDOWN_DRAIN_S=(\S+)$", dockerfile, re.MULTILINE)
    assert float(drain) + BACKEND_CLOSE_S < DOCKER_STOP_S
    assert 'CMD ["python", "-m", "adapter"' in dockerfile


def test_compose_gives_each_service_longer_than_its_drain():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        drain = float(service["environment"]["ADAPTER_SHUTDOWN_DRAIN_S"])
        grace = float(service["stop_grace_period"].removesuffix("s"))
        assert drain + BACKEND_CLOSE_S < grace, name
