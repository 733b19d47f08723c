"""Our schemas and our OpenAPI document against the runner's published spec.

The spec is read from `../shared/contract/` beside the checkout (CI has it there); without it
these tests skip, saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from contract import schemas
from contract.pipelines import PIPELINE_SPECS, RUNNER_CONTRACT_SPECS
from tests.support.apps import entry
from tests.support.fake_backend import fake_app

SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared/contract/ai-runner-openapi.yaml"

if not SPEC_PATH.is_file():
    pytest.skip(
        f"the runner spec is not at {SPEC_PATH} (../shared/contract)", allow_module_level=True
    )

SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
SPEC_SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

# Our model for each schema of the spec (request bodies of multipart routes are `Body_<op>`).
OURS_BY_SPEC_NAME: dict[str, type[BaseModel]] = {
    "Body_genImageToImage": schemas.ImageToImageForm,
    "Body_genImageToVideo": schemas.ImageToVideoForm,
    "Body_genUpscale": schemas.UpscaleForm,
    "Body_genAudioToText": schemas.AudioToTextForm,
    "Body_genSegmentAnything2": schemas.SegmentAnything2Form,
    "Body_genImageToText": schemas.ImageToTextForm,
    **{
        name: getattr(schemas, name)
        for name in (
            "TextToImageParams",
            "TextToSpeechParams",
            "LiveVideoToVideoParams",
            "LLMRequest",
            "LLMMessage",
            "LLMResponse",
            "LLMChoice",
            "LLMTokenUsage",
            "Media",
            "MediaURL",
            "ImageResponse",
            "VideoResponse",
            "TextResponse",
            "Chunk",
            "MasksResponse",
            "ImageToTextResponse",
            "AudioResponse",
            "LiveVideoToVideoResponse",
            "HealthCheck",
            "GPUComputeInfo",
            "GPUUtilizationInfo",
            "HardwareInformation",
            "HardwareStats",
            "Version",
            "APIError",
            "HTTPError",
        )
    },
}
# FastAPI's own validation-error schemas, which our app generates itself.
FASTAPI_OWN = {"HTTPValidationError", "ValidationError"}

JSON_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}


def spec_type(prop: dict[str, Any], defs: dict[str, Any] | None = None) -> str:
    """The JSON type of a property, `$ref` for references to objects, ignoring a `null`
    alternative. A reference to an enum (pydantic's way) counts as the enum's type (the spec's
    way: inline)."""
    if "$ref" in prop and defs is not None:
        target = defs[prop["$ref"].rsplit("/", 1)[-1]]
        if "enum" in target:
            return target["type"]
    if "$ref" in prop or "allOf" in prop:
        return "$ref"
    if "anyOf" in prop:
        kinds = [spec_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        assert len(kinds) == 1, prop
        return kinds[0]
    if prop.get("format") == "binary" or prop.get("contentMediaType"):
        return "file"
    return prop["type"]


def test_every_spec_schema_has_our_model():
    assert set(SPEC_SCHEMAS) - FASTAPI_OWN == set(OURS_BY_SPEC_NAME)


@pytest.mark.parametrize("spec_name", sorted(OURS_BY_SPEC_NAME))
def test_fields_types_defaults_and_required_match_the_spec(spec_name):
    spec_schema = SPEC_SCHEMAS[spec_name]
    ours = OURS_BY_SPEC_NAME[spec_name]
    our_schema = ours.model_json_schema(ref_template="#/$defs/{model}")
    spec_props: dict[str, Any] = spec_schema.get("properties", {})
    our_props: dict[str, Any] = our_schema.get("properties", {})

    assert list(our_props) == list(spec_props), "field names (and their order)"
    assert set(our_schema.get("required", [])) == set(spec_schema.get("required", []))
    for name, prop in spec_props.items():
        assert spec_type(our_props[name], our_schema.get("$defs")) == spec_type(prop), name
        field = ours.model_fields[name]
        if "default" in prop:
            assert field.get_default(call_default_factory=True) == prop["default"], name
        elif name not in spec_schema.get("required", []):
            # Optional without a default in the spec: absent means "not given".
            assert field.get_default(call_default_factory=True) is None, name


def test_health_states_are_the_specs():
    enum = SPEC_SCHEMAS["HealthCheck"]["properties"]["status"]["enum"]
    assert [state.value for state in schemas.HealthStatus] == enum


@pytest.fixture(scope="module")
def our_openapi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    app = fake_app(tmp, entries=[entry("text-to-image", "test/tiny-sd")])
    return app.openapi()


# Our own pipelines' routes (runner_contract=False), which the spec does not have.
OWN_ROUTES = {
    (f"/{pipeline.value}", "post")
    for pipeline, spec in PIPELINE_SPECS.items()
    if not spec.runner_contract
}


def test_our_openapi_has_the_specs_paths_and_methods(our_openapi):
    spec_routes = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    our_routes = {(path, method) for path, ops in our_openapi["paths"].items() for method in ops}
    assert our_routes - OWN_ROUTES == spec_routes
    assert OWN_ROUTES <= our_routes
    assert not OWN_ROUTES & spec_routes


def test_only_the_runner_contract_pipelines_are_held_to_the_spec():
    spec_paths = {path for path in SPEC["paths"] if SPEC["paths"][path].get("post")}
    assert {f"/{pipeline.value}" for pipeline in RUNNER_CONTRACT_SPECS} == spec_paths


def _request_schema(document: dict[str, Any], operation: dict[str, Any]) -> tuple[str, dict]:
    ((media_type, content),) = operation["requestBody"]["content"].items()
    ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
    return media_type, document["components"]["schemas"][ref]


@pytest.mark.parametrize("pipeline", list(RUNNER_CONTRACT_SPECS), ids=str)
def test_each_generate_route_takes_the_specs_body(our_openapi, pipeline):
    path = f"/{pipeline.value}"
    spec_op, our_op = SPEC["paths"][path]["post"], our_openapi["paths"][path]["post"]
    spec_media, spec_body = _request_schema(SPEC, spec_op)
    our_media, our_body = _request_schema(our_openapi, our_op)
    assert our_media == spec_media
    assert our_op["operationId"] == spec_op["operationId"]
    assert list(our_body["properties"]) == list(spec_body["properties"])
    assert set(our_body.get("required", [])) == set(spec_body.get("required", []))
    for name, prop in spec_body["properties"].items():
        assert spec_type(our_body["properties"][name]) == spec_type(prop), name
    assert our_op["security"] == spec_op["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("pipeline", list(RUNNER_CONTRACT_SPECS), ids=str)
def test_each_generate_route_declares_the_specs_statuses(our_openapi, pipeline):
    path = f"/{pipeline.value}"
    spec_statuses = set(SPEC["paths"][path]["post"]["responses"])
    our_statuses = set(our_openapi["paths"][path]["post"]["responses"])
    assert our_statuses == spec_statuses


def test_service_routes_answer_the_specs_schemas(our_openapi):
    for path in ("/health", "/hardware/info", "/hardware/stats", "/version"):
        spec_ref = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        our_ref = our_openapi["paths"][path]["get"]["responses"]["200"]["content"][
            "application/json"
        ]
        assert our_ref["schema"]["$ref"] == spec_ref["schema"]["$ref"], path
        assert "security" not in our_openapi["paths"][path]["get"], path
