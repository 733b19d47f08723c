"""The runner's published OpenAPI spec, read from `../shared/contract/` beside the checkout, and
checks of answers against it. Tests that need it skip, saying why, when it is absent."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared/contract/ai-runner-openapi.yaml"


@cache
def _load() -> dict[str, Any] | None:
    if not SPEC_PATH.is_file():
        return None
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def runner_spec() -> dict[str, Any]:
    """The spec, or a skip of the calling test when it is not beside the checkout."""
    spec = _load()
    if spec is None:
        pytest.skip(f"the runner spec is not at {SPEC_PATH} (../shared/contract)")
    return spec


def spec_statuses(path: str) -> set[int]:
    """The statuses the spec declares for POST `path` (trailing slash or not); for the route of
    a pipeline of our own, outside the spec, the statuses our OpenAPI document declares."""
    from adapter.errors import declared_statuses
    from contract.pipelines import PIPELINE_SPECS

    route = "/" + path.strip("/")
    for pipeline, spec in PIPELINE_SPECS.items():
        if route == f"/{pipeline.value}" and not spec.runner_contract:
            return set(declared_statuses(pipeline))
    operation = runner_spec()["paths"][route]["post"]
    return {int(status) for status in operation["responses"]}


def assert_contract_error(response: Any, path: str) -> None:
    """`response` (httpx or requests) is an error the spec declares for POST `path`, with the
    spec's body for its status: HTTPError, or HTTPValidationError for 422."""
    status = response.status_code
    assert status in spec_statuses(path), f"{path}: {status} is not declared: {response.text}"
    assert 400 <= status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"detail"}, response.text
    detail = body["detail"]
    if status == 422:
        assert isinstance(detail, list) and detail, response.text
        for error in detail:
            assert isinstance(error["loc"], list), response.text
            assert all(isinstance(part, str | int) for part in error["loc"]), response.text
            assert isinstance(error["msg"], str) and isinstance(error["type"], str)
    else:
        assert isinstance(detail, dict) and isinstance(detail.get("msg"), str), response.text
        assert detail["msg"], response.text
