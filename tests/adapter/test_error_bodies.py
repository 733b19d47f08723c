"""Every 4xx body on the runner routes has the contract's shape, bodies that cannot be decoded at
all included: `{"detail": {"msg": ...}}` (HTTPError), and for 422 the spec's HTTPValidationError
`{"detail": [{"loc", "msg", "type"}]}`, as FastAPI writes it.

FastAPI and Starlette answer some bodies themselves, with a string `detail` (a JSON body that is
not UTF-8: `{"detail": "There was an error parsing the body"}`; a malformed multipart body:
`{"detail": "Invalid multipart data."}`), which a client generated from the spec cannot decode.
And an error body that echoes what the client sent (a lone surrogate, a NaN) must still render.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from contract.pipelines import PIPELINE_SPECS, Pipeline
from tests.support.fake_backend import fake_app
from tests.support.runner_spec import assert_contract_error

TOKEN = "s3cret"
JSON_ROUTES = [f"/{p.value}" for p, spec in PIPELINE_SPECS.items() if spec.body == "json"]
FORM_ROUTES = [f"/{p.value}" for p, spec in PIPELINE_SPECS.items() if spec.body == "multipart"]
ALL_ROUTES = JSON_ROUTES + FORM_ROUTES


def form(parts: bytes, boundary: str = "XyZ") -> tuple[bytes, str]:
    return parts, f"multipart/form-data; boundary={boundary}"


GOOD_FORM = (
    b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n\x89PNG\r\n\x1a\n\r\n"
    b'--XyZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n--XyZ--\r\n'
)

# name: (body, content type); each is sent to the routes it applies to.
JSON_BODIES: dict[str, tuple[bytes, str | None]] = {
    "not UTF-8": (b"\xff\xfeY", "application/json"),
    "UTF-16 with a BOM": ('{"prompt": "x"}'.encode("utf-16"), "application/json"),
    "latin-1 declared": ('{"prompt": "é"}'.encode("latin-1"), "application/json; charset=latin-1"),
    "truncated": (b'{"prompt": "a cat", "wid', "application/json"),
    "empty object": (b"{}", "application/json"),
    "a list": (b"[1, 2]", "application/json"),
    "garbage": (b"\x00\x01\x02 not json at all", "application/json"),
    "no content type": (b'{"prompt": "x"}', None),
    "text/plain": (b'{"prompt": "x"}', "text/plain"),
    "a form instead": (b"prompt=x", "application/x-www-form-urlencoded"),
    "multipart instead": form(GOOD_FORM),
    "a number of 5000 digits": (
        b'{"prompt": "x", "seed": ' + b"9" * 5000 + b"}",
        "application/json",
    ),
    "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "a lone surrogate in an invalid field": (
        b'{"prompt": 5, "model_id": "\\ud800", "width": "\\udfff"}',
        "application/json",
    ),
    "a lone surrogate in the model": (
        b'{"prompt": "x", "model_id": "\\ud800", '
        b'"model": "\\ud800", "text": "x", "messages": [], '
        b'"subscribe_url": "s", "publish_url": "p"}',
        "application/json",
    ),
    "NaN beside a missing field": (
        b'{"guidance_scale": NaN, "temperature": Infinity}',
        "application/json",
    ),
}

FORM_BODIES: dict[str, tuple[bytes, str | None]] = {
    "malformed multipart": form(b"--XyZ\r\nthis is not a part header\r\n\r\n"),
    "no boundary": (GOOD_FORM, "multipart/form-data"),
    "the wrong boundary": form(GOOD_FORM, boundary="Other"),
    "truncated in a header": form(GOOD_FORM[:40]),
    "truncated in the file": form(GOOD_FORM[:130]),
    "no closing boundary": form(GOOD_FORM[: GOOD_FORM.rindex(b"--XyZ--")]),
    "a part without a name": form(
        b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n"
    ),
    "not UTF-8 in a field": form(
        b'--XyZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\r\n--XyZ--\r\n'
    ),
    "a file for a text field": form(
        b'--XyZ\r\nContent-Disposition: form-data; name="prompt"; filename="p.txt"\r\n\r\n'
        b"abc\ndef\r\n--XyZ\r\nContent-Disposition: form-data; name="
        b'"model_id"; filename="m.txt"\r\n\r\nxyz\r\n--XyZ--\r\n'
    ),
    "JSON instead": (b'{"prompt": "x"}', "application/json"),
    "JSON not UTF-8 instead": (b"\xff\xfeY", "application/json"),
    "a form instead": (b"prompt=%ff%fe&image=abc", "application/x-www-form-urlencoded"),
    "text/plain": (b"hello", "text/plain"),
    "no content type": (GOOD_FORM, None),
    "empty": (b"", "multipart/form-data; boundary=XyZ"),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = fake_app(tmp_path_factory.mktemp("bodies"), auth_token=TOKEN)
    with TestClient(
        app, headers={"Authorization": f"Bearer {TOKEN}"}, raise_server_exceptions=False
    ) as c:
        yield c


def post(client: TestClient, path: str, body: bytes, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


# Bodies a lenient reader may still serve: Python reads JSON in UTF-16 with its BOM; Starlette
# takes a multipart body cut short as ended (a route that decodes the file then refuses it).
LENIENT = {"UTF-16 with a BOM", "truncated in the file", "no closing boundary"}


def assert_shaped(response: Any, path: str, case: str = "") -> None:
    assert response.status_code < 500, response.text
    if case in LENIENT and response.status_code == 200:
        return
    assert 400 <= response.status_code, response.text
    assert_contract_error(response, path)
    assert "_max_mem_size" not in response.text  # no file object's internals echoed


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("case", JSON_BODIES)
def test_undecodable_json_bodies_get_the_contracts_body(client, path, case):
    assert_shaped(post(client, path, *JSON_BODIES[case]), path, case)


@pytest.mark.parametrize("path", FORM_ROUTES)
@pytest.mark.parametrize("case", FORM_BODIES)
def test_undecodable_multipart_bodies_get_the_contracts_body(client, path, case):
    assert_shaped(post(client, path, *FORM_BODIES[case]), path, case)


def test_the_issues_two_examples_say_what_is_wrong(client):
    not_utf8 = post(client, "/text-to-image", b"\xff\xfeY", "application/json")
    assert not_utf8.status_code == 400
    assert not_utf8.json() == {
        "detail": {"msg": "There was an error parsing the body: the JSON body is not UTF-8 text."}
    }
    malformed = post(client, "/image-to-image", *FORM_BODIES["no boundary"])
    assert malformed.status_code == 400
    assert malformed.json() == {"detail": {"msg": "Missing boundary in multipart."}}


def test_a_422_stays_the_specs_validation_body_and_survives_what_it_echoes(client):
    response = post(client, "/text-to-image", *JSON_BODIES["a lone surrogate in an invalid field"])
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {tuple(error["loc"]) for error in errors} == {("body", "prompt"), ("body", "width")}
    assert all(set(error) >= {"loc", "msg", "type"} for error in errors)
    assert "\\udfff" in response.text  # echoed, escaped: the body is ASCII JSON

    nan = post(client, "/text-to-image", *JSON_BODIES["NaN beside a missing field"])
    assert nan.status_code == 422
    assert nan.json()["detail"][0]["input"] == {"guidance_scale": "nan", "temperature": "inf"}

    uploaded = post(client, "/image-to-image", *FORM_BODIES["a file for a text field"])
    assert uploaded.status_code == 422
    inputs = [error.get("input") for error in uploaded.json()["detail"]]
    assert "<file 'p.txt', 7 bytes>" in inputs


def test_an_error_message_echoing_a_lone_surrogate_renders(client):
    response = post(client, "/text-to-image", *JSON_BODIES["a lone surrogate in the model"])
    assert response.status_code == 400
    assert response.json()["detail"]["msg"].startswith("Model \ud800 is not served")


def test_other_paths_keep_fastapis_answers_as_the_runner_does(client):
    assert client.post("/no-such-route").json() == {"detail": "Not Found"}
    assert client.get("/text-to-image").json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("path", ALL_ROUTES)
def test_a_trailing_slash_gets_the_same_bodies(client, path):
    body, content_type = JSON_BODIES["not UTF-8"]
    response = post(client, path + "/", body, content_type)
    assert_shaped(response, path)
    assert response.status_code == post(client, path, body, content_type).status_code


def test_the_runner_routes_are_the_table(client):
    assert sorted(ALL_ROUTES) == sorted(f"/{p.value}" for p in Pipeline)
