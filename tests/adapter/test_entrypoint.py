"""`uvicorn adapter.main:app` with no configuration, as a newcomer runs it: a real process that
builds its demo model on first start and serves text-to-image."""

from __future__ import annotations

import httpx

from tests.support.images import decode
from tests.support.runner_process import RunnerProcess


def test_the_default_serves_text_to_image_offline_with_a_demo_model(tmp_path):
    with RunnerProcess(tmp_path, entries=None) as demo:
        response = httpx.post(
            f"{demo.url}/text-to-image",
            json={"prompt": "a red fox", "width": 64, "height": 64, "seed": 42},
            timeout=120,
        )
        version = httpx.get(f"{demo.url}/version").json()
    assert response.status_code == 200, response.text
    (image,) = response.json()["images"]
    assert image["seed"] == 42
    assert decode(image["url"]).size == (64, 64)
    assert (tmp_path / "demo").is_dir()
    assert version["model_id"].startswith("demo/")
