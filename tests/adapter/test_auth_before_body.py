"""The bearer token is checked before any byte of the body is read (issue 12, item 4).

Over raw sockets to a real uvicorn server: a client that announces a large upload and sends
only its headers gets its 401 at once; one that asks `Expect: 100-continue` gets the 401 instead
of the `100 Continue` that would start its upload. No model is loaded (the fake backend).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.app import create_app
from adapter.web.auth import guarded_paths
from contract.aimodels import merge_entries, parse_entries
from contract.pipelines import PIPELINE_SPECS
from tests.support.apps import make_settings, sd_entry, serve
from tests.support.fake_backend import FakeBackend

TOKEN = "s3cret"
BIG = 49 * 1024 * 1024


@pytest.fixture(scope="module")
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend):
    tmp_path = tmp_path_factory.mktemp("auth")
    models = merge_entries(parse_entries([sd_entry(tmp_path / "unused")]))
    return create_app(make_settings(tmp_path, auth_token=TOKEN), models, backend)


@pytest.fixture(scope="module")
def address(app) -> Iterator[tuple[str, int]]:
    with serve(app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def exchange(address: tuple[str, int], head: str, timeout_s: float = 5.0) -> tuple[bytes, bool]:
    """Send only `head` (request line and headers), then read until the server closes or goes
    quiet; returns what came back and whether the server closed the connection."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(head.encode("latin-1"))
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


def head(path: str, *headers: str, length: int = BIG) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: runner", f"Content-Length: {length}", *headers]
    return "\r\n".join(lines) + "\r\n\r\n"


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    header_block, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


MULTIPART = "Content-Type: multipart/form-data; boundary=xyz"


@pytest.mark.parametrize("path", ["/audio-to-text", "/image-to-image/"])
def test_a_big_upload_without_a_token_is_refused_from_its_headers(address, backend, path):
    raw, closed = exchange(address, head(path, MULTIPART))
    status, headers, body = split_response(raw)
    assert status == 401
    assert json.loads(body) == {"detail": {"msg": "Invalid bearer token."}}
    assert headers["www-authenticate"] == "Bearer"
    # The announced body is never read: the connection is closed, not kept for the upload.
    assert closed
    assert backend.received == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Basic czNjcmV0", "Bearer"],
    ids=["none", "wrong", "other-scheme", "empty"],
)
def test_an_expect_100_continue_client_gets_its_401_instead_of_the_go_ahead(address, authorization):
    extra = [f"Authorization: {authorization}"] if authorization else []
    request = head("/audio-to-text", MULTIPART, "Expect: 100-continue", *extra)
    raw, closed = exchange(address, request)
    assert not raw.startswith(b"HTTP/1.1 100"), raw[:60]
    status, _, body = split_response(raw)
    assert (status, json.loads(body)) == (401, {"detail": {"msg": "Invalid bearer token."}})
    assert closed


def test_json_routes_word_their_early_401_as_the_runner_does(address):
    raw, _ = exchange(address, head("/llm", "Content-Type: application/json", length=5000))
    status, headers, body = split_response(raw)
    assert (status, json.loads(body)) == (401, {"detail": {"msg": "Invalid bearer token"}})
    assert headers["www-authenticate"] == "Bearer"


def test_the_right_token_gets_the_go_ahead_to_upload(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            head(
                "/audio-to-text",
                MULTIPART,
                "Expect: 100-continue",
                f"Authorization: Bearer {TOKEN}",
                length=1000,
            ).encode()
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")


def test_other_methods_and_service_routes_are_not_guarded(address):
    wrong_method, _ = exchange(address, "GET /text-to-image HTTP/1.1\r\nHost: r\r\n\r\n", 2)
    assert split_response(wrong_method)[0] == 405
    health, _ = exchange(address, "GET /health HTTP/1.1\r\nHost: r\r\n\r\n", 2)
    assert split_response(health)[0] == 200


def test_every_route_that_declares_the_token_is_guarded_before_its_body(app):
    guarded = guarded_paths(PIPELINE_SPECS.values())
    secured = {
        path
        for path, operations in app.openapi()["paths"].items()
        for operation in operations.values()
        if operation.get("security")
    }
    assert secured == {path for path in guarded if not path.endswith("/")}
    assert {path.rstrip("/") for path in guarded} == secured
    assert guarded["/llm/"] == "Invalid bearer token"


def test_without_a_token_nothing_is_checked(tmp_path: Path):
    models = merge_entries(parse_entries([sd_entry(tmp_path / "unused")]))
    open_app = create_app(make_settings(tmp_path), models, FakeBackend())
    with serve(open_app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(head("/audio-to-text", MULTIPART, "Expect: 100-continue").encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
