"""The output stores, one behaviour: every test runs against a local directory and against a
real S3-compatible server (moto's, a separate process reached over HTTP)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

from adapter.jobs.outputs import LocalOutputStore, OutputStore, open_outputs
from adapter.jobs.outputs.s3 import S3OutputStore
from contract.errors import BadRequestError, ConfigError, ServiceUnavailableError
from tests.support.runner_process import free_port
from tests.support.s3_server import CREDENTIALS, S3Server

BAD_KEYS = ["", "../x", "jobs/../../x", "/etc/passwd", "a//b", "a/./b", ".hidden", "a\\b", "a\0b"]


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


def raw_client(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def bucket(request: pytest.FixtureRequest, aws_env: None) -> Iterator[str]:
    server: S3Server = request.getfixturevalue("s3_server")
    name = f"outputs-{uuid.uuid4().hex[:12]}"
    raw_client(server).create_bucket(Bucket=name)
    yield name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutputStore]:
    made: OutputStore
    if request.param == "local":
        made = LocalOutputStore(tmp_path / "outputs")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        name = request.getfixturevalue("bucket")
        made = S3OutputStore(f"s3://{name}/tenant-a", endpoint_url=server.endpoint_url)
    run(made.open())
    yield made
    run(made.close())


def test_an_object_reads_back_whole_with_its_size_and_type(store: OutputStore) -> None:
    data = os.urandom(70_000)
    run(store.put("jobs/job_1/image-0.png", data, "image/png"))
    assert run(store.get("jobs/job_1/image-0.png")) == data
    assert run(store.size("jobs/job_1/image-0.png")) == 70_000
    assert run(store.content_type("jobs/job_1/image-0.png")) == "image/png"
    # A key without an extension keeps the type it was given (an upload).
    run(store.put("inputs/job_1/audio", b"RIFF....", "audio/wav"))
    assert run(store.content_type("inputs/job_1/audio")) == "audio/wav"
    # Written again (a retried attempt): the new bytes, whole.
    run(store.put("jobs/job_1/image-0.png", b"second", "image/png"))
    assert run(store.get("jobs/job_1/image-0.png")) == b"second"
    assert run(store.size("jobs/job_1/image-0.png")) == 6


def test_ranges_read_inclusive_bytes_and_clamp_at_the_end(store: OutputStore) -> None:
    data = bytes(range(256)) * 4
    run(store.put("jobs/job_1/video.mp4", data, "video/mp4"))
    assert run(store.read_range("jobs/job_1/video.mp4", 0, 0)) == data[:1]
    assert run(store.read_range("jobs/job_1/video.mp4", 100, 199)) == data[100:200]
    assert run(store.read_range("jobs/job_1/video.mp4", 1000, 5000)) == data[1000:]
    for start, end in [(1024, 2000), (5, 4), (-1, 3)]:
        with pytest.raises(ValueError):
            run(store.read_range("jobs/job_1/video.mp4", start, end))


def test_a_missing_key_is_a_key_error_everywhere(store: OutputStore) -> None:
    run(store.put("jobs/job_1/image-0.png", b"x", "image/png"))
    for missing in ["jobs/job_1/image-1.png", "jobs/job_2/image-0.png", "jobs/job_1"]:
        for call in (store.get, store.size, store.content_type):
            with pytest.raises(KeyError):
                run(call(missing))
        with pytest.raises(KeyError):
            run(store.read_range(missing, 0, 1))


def test_delete_prefix_deletes_exactly_the_keys_it_starts(store: OutputStore) -> None:
    keys = ["jobs/a/x.png", "jobs/a/sub/y.png", "jobs/ab/z.png", "jobs/b/w.png", "inputs/a/image"]
    for key in keys:
        run(store.put(key, key.encode(), "image/png"))
    assert run(store.delete_prefix("jobs/a/")) == 2
    for gone in ["jobs/a/x.png", "jobs/a/sub/y.png"]:
        with pytest.raises(KeyError):
            run(store.get(gone))
    assert run(store.get("jobs/ab/z.png")) == b"jobs/ab/z.png"
    # A string prefix, as S3 has it: "jobs/a" also starts jobs/ab/...
    assert run(store.delete_prefix("jobs/a")) == 1
    assert run(store.delete_prefix("jobs/nothing/")) == 0
    assert run(store.get("jobs/b/w.png")) == b"jobs/b/w.png"
    assert run(store.get("inputs/a/image")) == b"inputs/a/image"
    with pytest.raises(BadRequestError):
        run(store.delete_prefix(""))  # would delete everything
    with pytest.raises(BadRequestError):
        run(store.delete_prefix("/"))


def test_keys_that_could_leave_the_store_are_refused(store: OutputStore) -> None:
    for key in BAD_KEYS:
        with pytest.raises(BadRequestError):
            run(store.put(key, b"x", "text/plain"))
        with pytest.raises(BadRequestError):
            run(store.get(key))
        with pytest.raises(BadRequestError):
            store.presigned_url(key, 60)


def test_a_symbolic_link_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    store = LocalOutputStore(tmp_path / "outputs")
    run(store.open())
    (tmp_path / "outputs" / "jobs").symlink_to(outside)
    with pytest.raises(BadRequestError):
        run(store.get("jobs/secret"))
    with pytest.raises(BadRequestError):
        run(store.put("jobs/new", b"x", "text/plain"))
    assert not (outside / "new").exists()


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalOutputStore(tmp_path / "outputs")
    run(store.open())
    run(store.put("jobs/j/out.json", b'{"old": true}', "application/json"))

    def crash(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="No space left"):
        run(store.put("jobs/j/out.json", b'{"new": tr', "application/json"))
    monkeypatch.undo()
    assert run(store.get("jobs/j/out.json")) == b'{"old": true}'
    # No temporary file is left behind, and nothing but the object and its type.
    assert sorted(p.name for p in (tmp_path / "outputs/jobs/j").iterdir()) == [
        ".out.json.type",
        "out.json",
    ]
    # A folder emptied by delete_prefix goes too.
    assert run(store.delete_prefix("jobs/j/")) == 1
    assert not (tmp_path / "outputs/jobs/j").exists()


def test_the_local_store_gives_no_links(tmp_path: Path) -> None:
    assert LocalOutputStore(tmp_path).presigned_url("jobs/j/image-0.png", 60) is None


def test_a_presigned_link_fetches_the_bytes_without_credentials(
    s3_server: S3Server, bucket: str
) -> None:
    store = S3OutputStore(f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    data = os.urandom(5000)
    run(store.put("jobs/j/video.mp4", data, "video/mp4"))
    url = store.presigned_url("jobs/j/video.mp4", 1)
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "video/mp4"
    # A browser asks for ranges of a video: the link serves them.
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    # The link says how long it lives. moto (5.2.5) checks neither a link's signature nor its
    # expiry (its server answers 200 after it), so that is AWS's and MinIO's part, untested.
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["1"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    with pytest.raises(ValueError):
        store.presigned_url("jobs/j/video.mp4", 0)
    with pytest.raises(ValueError):
        store.presigned_url("jobs/j/video.mp4", 8 * 24 * 3600)
    assert S3OutputStore(f"s3://{bucket}", presign=False).presigned_url("jobs/j/a", 60) is None
    run(store.close())


def test_links_are_signed_for_the_public_address(s3_server: S3Server, bucket: str) -> None:
    store = S3OutputStore(
        f"s3://{bucket}",
        endpoint_url=s3_server.endpoint_url,
        public_endpoint_url="https://files.example.com",
    )
    url = store.presigned_url("jobs/j/image-0.png", 60)
    assert url is not None and url.startswith(f"https://files.example.com/{bucket}/jobs/j/")
    run(store.close())


def test_the_prefix_keeps_objects_apart_in_one_bucket(s3_server: S3Server, bucket: str) -> None:
    ours = S3OutputStore(f"s3://{bucket}/tenant-a/", endpoint_url=s3_server.endpoint_url)
    theirs = S3OutputStore(f"s3://{bucket}/tenant-b", endpoint_url=s3_server.endpoint_url)
    run(ours.put("jobs/j/a.png", b"ours", "image/png"))
    run(theirs.put("jobs/j/a.png", b"theirs", "image/png"))
    listed = raw_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "tenant-a/jobs/j/a.png",
        "tenant-b/jobs/j/a.png",
    ]
    assert run(ours.delete_prefix("jobs/")) == 1
    assert run(theirs.get("jobs/j/a.png")) == b"theirs"
    run(ours.close())
    run(theirs.close())


def test_delete_prefix_follows_every_page(s3_server: S3Server, bucket: str) -> None:
    store = S3OutputStore(f"s3://{bucket}", endpoint_url=s3_server.endpoint_url)
    store.page_size = 3  # 10 objects: four pages to list, four batches to delete

    async def fill() -> None:
        await asyncio.gather(*(store.put(f"jobs/j/{i}", b"x", "text/plain") for i in range(10)))

    run(fill())
    run(store.put("jobs/k/keep", b"x", "text/plain"))
    assert run(store.delete_prefix("jobs/j/")) == 10
    keys = [
        item["Key"] for item in raw_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]
    ]
    assert keys == ["jobs/k/keep"]
    run(store.close())


def test_open_names_the_setting_when_the_bucket_is_missing(
    s3_server: S3Server, aws_env: None
) -> None:
    store = S3OutputStore("s3://no-such-bucket-here", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(ConfigError, match=r"ADAPTER_JOBS_OUTPUTS_URL.*no-such-bucket-here"):
        run(store.open())
    # Nor does a write create it: the bucket is the operator's.
    with pytest.raises(ServiceUnavailableError, match="NoSuchBucket"):
        run(store.put("jobs/j/a", b"x", "text/plain"))
    names = [item["Name"] for item in raw_client(s3_server).list_buckets()["Buckets"]]
    assert "no-such-bucket-here" not in names


def test_open_names_the_endpoint_when_nothing_answers(aws_env: None) -> None:
    store = S3OutputStore("s3://bucket1", endpoint_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="ADAPTER_JOBS_S3_ENDPOINT_URL"):
        run(store.open())
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "data/outputs"),
        ("", "data/outputs"),
        ("file:///srv/outputs", "/srv/outputs"),
        ("/srv/outputs", "/srv/outputs"),
    ],
)
def test_open_outputs_picks_a_directory(url: str | None, expected: str, tmp_path: Path) -> None:
    store = open_outputs(url, tmp_path / "data")
    assert isinstance(store, LocalOutputStore)
    assert store.root == (tmp_path / expected if not expected.startswith("/") else Path(expected))


def test_open_outputs_picks_s3_by_url(aws_env: None, tmp_path: Path) -> None:
    store = open_outputs("s3://media/adapter/outputs", tmp_path, s3_endpoint_url="http://x:9000")
    assert isinstance(store, S3OutputStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == (
        "media",
        "adapter/outputs",
        "http://x:9000",
    )


@pytest.mark.parametrize(
    "url", ["gs://bucket/x", "s3://", "s3:///prefix", "outputs", "file://host/dir", "s3://b/../x"]
)
def test_an_unknown_store_url_names_the_setting(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ADAPTER_JOBS_OUTPUTS_URL"):
        open_outputs(url, tmp_path)
