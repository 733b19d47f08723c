"""The /ui page's static serving (headers, caching, policy) and the pipeline catalog it reads."""

from __future__ import annotations

import gzip
import re

import pytest
from fastapi.testclient import TestClient

from adapter.jobs.catalog import CATALOG_PATH
from adapter.jobs.settings import JobsSettings
from adapter.jobs.ui import output_origins
from adapter.jobs.ui.page import ASSETS, content_security_policy, load_page
from tests.support.apps import entry
from tests.support.fake_backend import fake_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    entries = [
        entry("text-to-image", "test/sd-a", runner={"default": True}),
        entry("text-to-image", "test/sd-b"),
        entry("image-to-image", "test/img2img"),
        entry("audio-to-text", "test/whisper"),
        entry("llm", "test/llm"),
        entry("live-video-to-video", "test/live"),
    ]
    jobs = JobsSettings(
        enabled=True,
        database_url=f"sqlite:///{tmp / 'jobs.db'}",
        outputs_url=f"file://{tmp / 'out'}",
    )
    app = fake_app(tmp, entries=entries, auth_token="secret", jobs=jobs, data_dir=tmp)
    with TestClient(app) as client:
        yield client


def test_ui_redirects_to_the_page_relatively(client):
    answer = client.get("/ui", follow_redirects=False)
    assert answer.status_code == 308
    assert answer.headers["location"] == "ui/"


def test_the_page_is_served_without_a_token_with_a_strict_policy(client):
    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # Nothing from another origin, no inline script or style (the policy would block them).
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert "<script>" not in page.text and "style=" not in page.text
    for label in ('for="token"', 'for="pipeline"', 'for="model"', 'for="prompt"'):
        assert label in page.text
    assert 'aria-live="polite"' in page.text


def test_assets_are_named_by_hash_and_cached_for_a_year(client):
    page = client.get("/ui/").text
    files = load_page()
    for name, content_type in ASSETS.items():
        version = files[name].version
        assert f'{name}?v={version}"' in page
        current = client.get(f"/ui/{name}?v={version}")
        assert current.status_code == 200
        assert current.headers["content-type"] == content_type
        assert current.headers["cache-control"] == "public, max-age=31536000, immutable"
        stale = client.get(f"/ui/{name}?v=old")
        assert stale.headers["cache-control"] == "no-cache"


def test_revalidation_answers_304_and_gzip_when_accepted(client):
    first = client.get("/ui/app.js", headers={"accept-encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["vary"] == "Accept-Encoding"
    plain = client.get("/ui/app.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == load_page()["app.js"].body
    assert gzip.decompress(gzip.compress(plain.content)) == plain.content
    again = client.get("/ui/app.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    head = client.head("/ui/")
    assert head.status_code == 200


def test_other_names_under_ui_are_404(client):
    for name in ("secret.txt", "..%2Fapp.py", "page.py", "__init__.py"):
        answer = client.get(f"/ui/{name}")
        assert answer.status_code == 404, name


def test_media_origins_join_the_policy():
    policy = content_security_policy(["https://s3.example.com"])
    assert "img-src 'self' blob: https://s3.example.com data:" in policy
    assert "media-src 'self' blob: https://s3.example.com" in policy
    assert "connect-src 'self' https://s3.example.com" in policy


def test_outputs_in_s3_add_the_stores_origin():
    assert output_origins(JobsSettings(outputs_url="file:///srv/outputs")) == ()
    minio = JobsSettings(outputs_url="s3://b/p", s3_endpoint_url="http://127.0.0.1:9000/x")
    assert output_origins(minio) == ("http://127.0.0.1:9000",)
    assert output_origins(JobsSettings(outputs_url="s3://b")) == ("https://*.amazonaws.com",)
    public = minio.model_copy(update={"s3_public_url": "https://files.example.com"})
    assert output_origins(public) == ("https://files.example.com",)
    assert output_origins(minio.model_copy(update={"s3_presign": False})) == ()


def test_without_the_jobs_door_there_is_no_page(tmp_path):
    app = fake_app(tmp_path, jobs=JobsSettings(enabled=False))
    with TestClient(app) as client:
        assert client.get("/ui/").status_code == 404
        assert client.get(CATALOG_PATH).status_code == 404


def test_the_catalog_lists_served_job_pipelines_with_their_uploads(client):
    # Open, like /version: the page fills its pickers before a token is typed.
    answer = client.get(CATALOG_PATH)
    assert answer.status_code == 200
    assert answer.json()["auth_required"] is True
    by_name = {item["pipeline"]: item for item in answer.json()["data"]}
    assert list(by_name) == ["text-to-image", "image-to-image", "audio-to-text", "llm"]
    t2i = by_name["text-to-image"]
    enhance = {"num_inference_steps": 50}
    assert t2i["models"] == [
        {"model_id": "test/sd-a", "default": True, "enhance": enhance},
        {"model_id": "test/sd-b", "default": False, "enhance": enhance},
    ]
    assert t2i["uploads"] == [] and t2i["body"] == "json" and t2i["prompt_field"] == "prompt"
    params = {p["name"]: p for p in t2i["params"]}
    assert params["seed"] == {
        "name": "seed",
        "type": "integer",
        "nullable": True,
        "default": None,
        "description": "Seed for random number generation.",
    }
    assert params["width"]["default"] == 1024 and params["safety_check"]["type"] == "boolean"
    assert "model_id" not in params and "prompt" not in params
    (image,) = by_name["image-to-image"]["uploads"]
    assert image["field"] == "image" and image["required"] and "image/png" in image["accept"]
    (audio,) = by_name["audio-to-text"]["uploads"]
    assert audio["field"] == "audio" and "audio/*" in audio["accept"]
    llm = by_name["llm"]
    assert llm["prompt_field"] == "messages" and llm["model_field"] == "model"
    assert "model" not in {p["name"] for p in llm["params"]}
    assert llm["models"][0]["enhance"] == {}  # nothing to enhance: the page offers no button
