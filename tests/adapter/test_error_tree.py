"""The error tree is complete in one module (contract/errors.py) and mapped to HTTP in one place
(adapter/errors.py)."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest

import contract.errors as tree
from adapter.errors import ErrorMapping, nearest_declared, route_error_statuses, runner_operation
from contract.errors import (
    OverloadedError,
    RunnerError,
    ServiceUnavailableError,
    UpstreamError,
)
from contract.pipelines import Pipeline

ROOT = Path(__file__).resolve().parents[2]
# The service's packages; functions/ (plain inference) and pricing/ (a CLI tool) have errors of
# their own that never reach HTTP as such.
SERVICE_PACKAGES = ("adapter", "contract", "modal_deploy")
# A door's own wire signals, not errors of the service: each carries an answer already in that
# door's shape (OpenAI's error object, a workerbee reply, FastAPI's 422 list on the Live Runner
# door) or hands a tree error through FastAPI's body reader. Anything else belongs in the tree.
DOOR_SIGNALS = {
    "adapter/live_runner/bodies.py: RequestValidationFailed",
    "adapter/openai/errors.py: OpenAIError",
    "adapter/web/timeouts.py: BodyTimedOut",
    "adapter/workerbee/jobs.py: JobError",
}


def exception_classes(path: Path) -> list[str]:
    """Public classes in `path` that derive from a name ending in Error or Exception."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
            if any(base.endswith(("Error", "Exception", "TooLarge")) for base in bases):
                found.append(node.name)
    return found


def test_every_error_of_the_service_is_in_contract_errors():
    outside = {
        f"{path.relative_to(ROOT)}: {name}"
        for package in SERVICE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "contract" / "errors.py"
        for name in exception_classes(path)
    }
    assert outside <= DOOR_SIGNALS, "errors outside contract/errors.py"
    assert DOOR_SIGNALS <= outside, "a door signal listed here is gone: drop it from the list"


def test_contract_errors_imports_no_web_framework():
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse((ROOT / "contract" / "errors.py").read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert imported <= {"__future__", "typing"}


def errors_of_the_tree() -> list[RunnerError]:
    made: list[RunnerError] = []
    for value in vars(tree).values():
        if isinstance(value, type) and issubclass(value, RunnerError):
            if issubclass(value, ServiceUnavailableError | tree.QueueFullError):
                made.append(value("busy", retry_after_s=7))
            elif value is UpstreamError:
                made.append(UpstreamError(413, {"detail": {"msg": "big"}}, "big"))
            else:
                made.append(value("failed"))
    return made


@pytest.mark.parametrize("error", errors_of_the_tree(), ids=lambda e: type(e).__name__)
def test_each_error_survives_a_trip_through_pickle(error):
    # Modal sends the errors its containers raise back to the adapter pickled.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)


def test_the_mapping_answers_the_nearest_declared_status_on_runner_routes_only():
    scope = {"type": "http", "method": "POST", "path": "/text-to-image/", "root_path": ""}
    declared, passed = ErrorMapping(declared_only=True), ErrorMapping(declared_only=False)
    overload = OverloadedError("Model m has insufficient capacity.", retry_after_s=3)
    assert declared.response(overload, scope).status_code == 500
    assert declared.response(overload, scope).headers["retry-after"] == "3"
    assert passed.response(overload, scope).status_code == 503
    audio = {**scope, "path": "/audio-to-text"}
    assert declared.status(413, audio) == 413 and declared.status(415, audio) == 415
    assert declared.status(413, scope) == 400 and declared.status(415, scope) == 400
    for other in ({**scope, "path": "/jobs"}, {**scope, "method": "GET"}):
        assert runner_operation(other) is None
        assert declared.status(503, other) == 503
    behind_a_prefix = {**scope, "path": "/runner/llm", "root_path": "/runner"}
    assert runner_operation(behind_a_prefix) is Pipeline.LLM
    assert nearest_declared(418, frozenset({400})) == 400
    assert nearest_declared(502, frozenset({500})) == 500


def test_an_upstreams_answer_keeps_its_body_in_the_contracts_shape():
    scope = {"type": "http", "method": "POST", "path": "/text-to-image", "root_path": ""}
    mapping = ErrorMapping(declared_only=True)
    contract = {"detail": {"msg": "Prompt must be provided."}}
    assert json.loads(mapping.response(UpstreamError(400, contract, "x"), scope).body) == contract
    older = UpstreamError(400, {"detail": "There was an error parsing the body"}, "HTTP 400.")
    assert json.loads(mapping.response(older, scope).body) == {
        "detail": {"msg": "There was an error parsing the body"}
    }
    odd = UpstreamError(500, ["not", "a", "body"], "The upstream answered HTTP 500.")
    assert json.loads(mapping.response(odd, scope).body) == {
        "detail": {"msg": "The upstream answered HTTP 500."}
    }


def test_the_openapi_statuses_follow_the_same_choice():
    assert route_error_statuses(Pipeline.TEXT_TO_IMAGE, declared_only=True) == (400, 401, 500)
    assert route_error_statuses(Pipeline.AUDIO_TO_TEXT, True) == (400, 401, 413, 415, 500)
    assert 503 in route_error_statuses(Pipeline.TEXT_TO_IMAGE, declared_only=False)
