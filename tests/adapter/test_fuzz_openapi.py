"""A property-based run over the project's own OpenAPI document (`app.openapi()`), with
schemathesis (over Hypothesis), in process over ASGI.

Every operation gets requests that fit its schema, requests that break it (schemathesis'
negative mode), and requests whose bytes are spoiled after serialization: truncated, not UTF-8,
random, over the body limits (with and without a Content-Length), of the wrong content type, with
odd media (1x1 images, empty or tiny audio) and without the token. No answer may be a 5xx, and
every answer must be a status the operation declares, with its declared content type and schema.

Most operations run over a fake backend (the real routes, auth, limits, glue checks and upload
decoding, no model); text-to-image and the LLM also run over the real tiny demo models with small
limits, with adversarial field values, so inputs that crash a real model are found.

Bounded in time: a fixed number of examples per operation (ADAPTER_TEST_FUZZ_EXAMPLES, default
8), derandomized so CI is repeatable; ADAPTER_TEST_FUZZ_RANDOM=1 draws new examples each run.
"""

from __future__ import annotations

import io
import json
import math
import os
import wave
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contract.pipelines import PIPELINE_SPECS, Pipeline
from tests.support.apps import llm_entry, make_app, model_entry, sd_entry, serve
from tests.support.fake_backend import fake_app, valid_request

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("ADAPTER_TEST_FUZZ_EXAMPLES", "8"))
MAX_JSON_BYTES = 16 * 1024
MAX_BYTES = 64 * 1024
LIMITS = {
    "max_json_request_bytes": MAX_JSON_BYTES,
    "max_request_bytes": MAX_BYTES,
    "max_audio_bytes": 32 * 1024,
    "max_pixels_per_image": 64 * 64,
    "max_images_per_request": 2,
    "max_inference_steps": 100,
    "max_llm_tokens": 8,
    "max_llm_prompt_tokens": 256,
    "max_input_pixels": 128 * 128,
    "max_upscale_input_pixels": 32 * 32,
    "max_video_frames": 2,
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
POST_PATHS = [f"/{pipeline.value}" for pipeline in PIPELINE_SPECS]
GET_PATHS = ["/health", "/hardware/info", "/hardware/stats", "/version"]


def fuzz_settings(examples: int = EXAMPLES) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=os.environ.get("ADAPTER_TEST_FUZZ_RANDOM") != "1",
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Iterator[Target]:
    app = fake_app(tmp_path_factory.mktemp("fuzz"), auth_token=TOKEN, limits=LIMITS)
    yield from _serving(app)


@pytest.fixture(scope="module")
def real(tmp_path_factory, tiny_sd, tiny_llm, tiny_wan) -> Iterator[Target]:
    entries = [sd_entry(tiny_sd, runner={"num_inference_steps": 1}), llm_entry(tiny_llm)]
    entries.append(model_entry("text-to-video", tiny_wan, "test/wan"))
    app = make_app(tmp_path_factory.mktemp("fuzz-real"), entries, auth_token=TOKEN, limits=LIMITS)
    yield from _serving(app)


class Target:
    """The app's own OpenAPI document and a session to the app, served by uvicorn in a thread.

    Over a socket rather than schemathesis' in-process ASGI client: its pytest plugin ends every
    ASGI lifespan after each test, which would close the backend under a module's fixture.
    """

    def __init__(self, app: Any, base_url: str, session: requests.Session) -> None:
        self.schema = schemathesis.openapi.from_dict(app.openapi())
        self.base_url = base_url
        self.session = session

    def call(self, case: Case) -> Any:
        return case.call(base_url=self.base_url, session=self.session, headers=AUTH, timeout=60)

    def post(self, path: str, data: Any, headers: dict[str, str]) -> requests.Response:
        return self.session.post(self.base_url + path, data=data, headers=headers, timeout=60)


def _serving(app: Any) -> Iterator[Target]:
    with serve(app) as base_url, requests.Session() as session:
        session.headers.update(AUTH)
        yield Target(app, base_url, session)


def validate(case: Case, response: Any) -> None:
    """`response`: schemathesis' own (headers as lists) or a requests one."""
    content_type = response.headers.get("content-type") or response.headers.get("Content-Type")
    if isinstance(content_type, list):
        content_type = content_type[0]
    checks = CHECKS
    if (content_type or "").startswith("text/event-stream"):
        # The spec declares /llm's 200 as JSON only; its stream is checked for the status.
        checks = [not_a_server_error, status_code_conformance]
    case.validate_response(response, checks=checks)


# --- spoiling a serialized request ---------------------------------------------------------


def serialized(case: Case) -> tuple[bytes, str | None]:
    """The request schemathesis would send for `case`: its body bytes and content type."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    names = ("method", "url", "headers", "files", "data", "json", "params")
    prepared = requests.Request(**{k: kwargs[k] for k in names if k in kwargs}).prepare()
    body = prepared.body or b""
    return body.encode() if isinstance(body, str) else body, prepared.headers.get("Content-Type")


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-16",
            "application/json; charset=x",
            "multipart/form-data",
            "multipart/form-data; boundary=nope",
            "multipart/mixed; boundary=a",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/octet-stream",
            "image/png",
            "",
            ";;;",
            'multipart/form-data; boundary="',
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
BAD_BYTES = st.sampled_from(
    [
        b"\xff\xfe",
        b"\xc3\x28",
        b"\x80",
        b"\xed\xa0\x80",
        b"\x00",
        b"\xf4\x90\x80\x80",
        b"\r\n--",
        b"\\ud800",
    ]
)


@st.composite
def spoiled(draw: st.DrawFn, body: bytes, content_type: str | None) -> tuple[Any, dict[str, str]]:
    """`body` made bad one way; returns what to send and the headers to send it with."""
    how = draw(
        st.sampled_from(
            [
                "intact",
                "truncated",
                "not utf-8",
                "random",
                "oversized",
                "chunked",
                "content type",
                "no token",
            ]
        )
    )
    headers = {"Content-Type": content_type} if content_type else {}
    if how == "intact":  # odd media in an otherwise good request
        return body, headers
    if how == "truncated":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))], headers
    if how == "not utf-8":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(BAD_BYTES) + body[at:], headers
    if how == "random":
        return draw(st.binary(max_size=600)), headers
    if how in ("oversized", "chunked"):
        size = draw(st.sampled_from([MAX_JSON_BYTES + 1, MAX_BYTES + 1, 3 * MAX_BYTES]))
        big = body + b" " * max(size - len(body), 0)
        if how == "oversized":
            return big, headers
        return (big[i : i + 8192] for i in range(0, len(big), 8192)), headers
    if how == "content type":
        return body, {"Content-Type": draw(CONTENT_TYPES)}
    return body, {**headers, "Authorization": draw(st.sampled_from(["", "Bearer no", "Basic x"]))}


@st.composite
def images(draw: st.DrawFn) -> bytes:
    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    mode, kind = draw(
        st.sampled_from(
            [
                ("RGB", "PNG"),
                ("L", "PNG"),
                ("RGBA", "PNG"),
                ("P", "PNG"),
                ("1", "PNG"),
                ("I;16", "PNG"),
                ("RGB", "JPEG"),
                ("CMYK", "JPEG"),
                ("P", "GIF"),
                ("RGB", "WEBP"),
                ("RGB", "BMP"),
            ]
        )
    )
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format=kind)
    return buffer.getvalue()


@st.composite
def sounds(draw: st.DrawFn) -> bytes:
    rate = draw(st.sampled_from([8000, 16000, 44100]))
    channels = draw(st.integers(1, 2))
    frames = draw(st.integers(0, rate // 4))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * frames * channels)
    return buffer.getvalue()


@st.composite
def with_real_media(draw: st.DrawFn, case: Case) -> Case:
    """The case with its files replaced by real media of odd sizes (1x1 images, empty audio)."""
    if isinstance(case.body, dict):
        for name in ("image", "audio"):
            if name in case.body:
                case.body[name] = draw(images() if name == "image" else sounds())
    return case


# --- the runs ------------------------------------------------------------------------------


def run_modes(target: Target, path: str, method: str) -> None:
    operation = target.schema[path][method]
    modes = [GenerationMode.POSITIVE]
    if method == "POST":
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @fuzz_settings()
        @given(case=operation.as_strategy(generation_mode=mode))
        def fits_or_breaks_the_schema(case: Case) -> None:
            validate(case, target.call(case))

        fits_or_breaks_the_schema()


def run_spoiled(target: Target, path: str) -> None:
    operation = target.schema[path]["POST"]

    @fuzz_settings(2 * EXAMPLES)
    @given(case=operation.as_strategy(), data=st.data())
    def spoiled_bytes(case: Case, data: st.DataObject) -> None:
        if data.draw(st.booleans()):  # spoil a request that would be served
            request = valid_request(Pipeline(path.strip("/")))
            if "files" in request:
                ((name, (filename, _, kind)),) = request["files"].items()
                media = data.draw(images() if name == "image" else sounds())
                request["files"] = {name: (filename, media, kind)}
            prepared = requests.Request("POST", target.base_url + path, **request).prepare()
            body, content_type = prepared.body, prepared.headers.get("Content-Type")
            body = body.encode() if isinstance(body, str) else body or b""
        else:
            case = data.draw(with_real_media(case))
            body, content_type = serialized(case)
        send, headers = data.draw(spoiled(body, content_type))
        validate(case, target.post(path, send, headers))

    spoiled_bytes()


@pytest.mark.parametrize("path", POST_PATHS + GET_PATHS)
def test_no_route_answers_a_5xx_or_breaks_its_schema(fake, path):
    run_modes(fake, path, "POST" if path in POST_PATHS else "GET")


@pytest.mark.parametrize("path", POST_PATHS)
def test_spoiled_bodies_get_declared_answers(fake, path):
    run_spoiled(fake, path)


# --- over the real tiny models ---------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00\ud800"])


def texts(surrogates: bool, min_size: int = 0) -> st.SearchStrategy[str]:
    text = st.text(min_size=min_size, max_size=40)
    return st.one_of(text, SURROGATES) if surrogates else text


def numbers() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -1.0, 1e30, math.nan, math.inf]),
    )


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """Values that pass the adapter's checks nine times in ten, so most requests reach the
    model, and the others test the checks."""
    return st.one_of(*[valid] * 9, invalid)


def text_to_image_fields(surrogates: bool) -> st.SearchStrategy[dict[str, Any]]:
    sizes = mostly(st.sampled_from([8, 16, 24, 32, 64]), st.integers(-8, 80))
    return st.fixed_dictionaries(
        {
            "prompt": mostly(texts(surrogates, min_size=1), st.just("")),
            "width": sizes,
            "height": sizes,
            "num_images_per_prompt": mostly(st.integers(1, 2), st.integers(-1, 3)),
            "num_inference_steps": mostly(st.integers(1, 4), st.integers(-2, 6)),
        },
        optional={
            "negative_prompt": texts(surrogates),
            "guidance_scale": numbers(),
            "loras": mostly(st.just(""), st.one_of(texts(False), st.just('{"a/b": 1.0}'))),
            "seed": st.one_of(st.integers(-(2**64), 2**64), st.none()),
            "safety_check": st.booleans(),
        },
    )


def text_to_video_fields(surrogates: bool) -> st.SearchStrategy[dict[str, Any]]:
    sizes = mostly(st.sampled_from([16, 32, 48, 64]), st.integers(-16, 80))
    return st.fixed_dictionaries(
        {
            "prompt": mostly(texts(surrogates, min_size=1), st.just("")),
            "width": sizes,
            "height": sizes,
            # The fuzzing limit is 2 frames: only 1 passes (4k+1).
            "num_frames": mostly(st.just(1), st.integers(-2, 10)),
            "num_inference_steps": mostly(st.integers(1, 3), st.integers(-2, 6)),
        },
        optional={
            "negative_prompt": texts(surrogates),
            "guidance_scale": numbers(),
            "fps": mostly(st.integers(1, 60), st.integers(-5, 1000)),
            "seed": st.one_of(st.integers(-(2**64), 2**64), st.none()),
            "safety_check": st.booleans(),
        },
    )


def llm_fields(surrogates: bool) -> st.SearchStrategy[dict[str, Any]]:
    roles = mostly(st.sampled_from(["user", "system", "assistant"]), texts(False))
    message = st.fixed_dictionaries({"role": roles, "content": texts(surrogates, min_size=1)})
    return st.fixed_dictionaries(
        {
            "messages": mostly(st.lists(message, min_size=1, max_size=3), st.lists(message)),
            "max_tokens": mostly(st.integers(1, 8), st.integers(-1, 10)),
        },
        optional={
            "temperature": numbers(),
            "top_p": numbers(),
            "top_k": st.integers(-5, 50),
            "stream": st.booleans(),
        },
    )


MODEL_FIELDS = {
    "/text-to-image": text_to_image_fields,
    "/llm": llm_fields,
    "/text-to-video": text_to_video_fields,
}


def run_model_inputs(target: Target, path: str, surrogates: bool) -> None:
    operation = target.schema[path]["POST"]

    @fuzz_settings(3 * EXAMPLES)
    @given(case=operation.as_strategy(), fields=MODEL_FIELDS[path](surrogates))
    def adversarial_fields(case: Case, fields: dict[str, Any]) -> None:
        case.body = fields
        # Serialized here: NaN and infinities are sent as JSON's NaN and Infinity, which Python
        # (and so FastAPI) reads; lone surrogates as escapes.
        body = json.dumps(fields).encode()
        validate(case, target.post(path, body, {"Content-Type": "application/json"}))

    adversarial_fields()


@pytest.mark.parametrize("path", ["/text-to-image", "/llm", "/text-to-video"])
def test_the_real_models_fuzzed_by_schema_and_spoiled_bytes(real, path):
    run_modes(real, path, "POST")
    run_spoiled(real, path)


@pytest.mark.parametrize("path", ["/text-to-image", "/llm", "/text-to-video"])
def test_the_real_models_take_adversarial_field_values(real, path):
    run_model_inputs(real, path, surrogates=False)


@pytest.mark.parametrize("path", ["/text-to-image", "/llm", "/text-to-video"])
def test_the_real_models_take_lone_surrogates(real, path):
    run_model_inputs(real, path, surrogates=True)


def test_the_document_lists_every_runner_route():
    assert sorted(POST_PATHS) == sorted(f"/{pipeline.value}" for pipeline in Pipeline)
