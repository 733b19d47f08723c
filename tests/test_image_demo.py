"""The built-in demo serves every image pipeline from tiny models it builds on first start."""

from __future__ import annotations

from adapter.app import create_app
from tests.conftest import make_settings, running_client
from tests.images import decode
from tests.livepeer_multipart import png_bytes, post_image


def test_the_demo_serves_image_to_image_video_and_upscale(tmp_path):
    settings = make_settings(tmp_path)
    with running_client(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "OK"}

        response = post_image(client, "/image-to-image", png_bytes(), prompt="x", seed=1)
        assert response.status_code == 200, response.text
        assert decode(response.json()["images"][0]["url"]).size == (64, 48)

        response = post_image(client, "/image-to-video", png_bytes(), height=48, width=64)
        assert response.status_code == 200, response.text
        assert [len(video) for video in response.json()["frames"]] == [3]

        response = post_image(client, "/upscale", png_bytes(), prompt="x")
        assert response.status_code == 200, response.text
        assert decode(response.json()["images"][0]["url"]).size == (256, 192)

    built = sorted(path.name for path in (tmp_path / "demo").iterdir())
    assert built == ["tiny-sd", "tiny-sd-x4-upscaler", "tiny-svd"]
