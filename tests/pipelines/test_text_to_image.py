"""Text-to-image through HTTP on tiny SD and SDXL pipelines loaded with from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.apps import running_client, sd_entry
from tests.support.images import decode, pixels


@pytest.fixture(params=["sd", "sdxl"])
def client(request, app_factory, tiny_sd, tiny_sdxl):
    path = tiny_sd if request.param == "sd" else tiny_sdxl
    with running_client(app_factory([sd_entry(path, model_id=f"test/{request.param}")])) as c:
        yield c


def generate(client, **fields):
    body = {
        "prompt": "a lighthouse at dusk",
        "width": 64,
        "height": 48,
        "num_inference_steps": 2,
        **fields,
    }
    response = client.post("/text-to-image", json=body)
    assert response.status_code == 200, response.text
    return response.json()["images"]


def test_returns_pngs_of_the_requested_size_count_and_seeds(client):
    images = generate(client, num_images_per_prompt=3, seed=1234)
    assert [image["seed"] for image in images] == [1234, 1235, 1236]
    assert [image["nsfw"] for image in images] == [False, False, False]
    for image in images:
        assert set(image) == {"url", "seed", "nsfw"}
        assert decode(image["url"]).size == (64, 48)


def test_same_seed_gives_the_same_image_and_other_seeds_differ(client):
    first = generate(client, seed=7)[0]
    second = generate(client, seed=7)[0]
    other = generate(client, seed=8)[0]
    assert np.array_equal(pixels(first["url"]), pixels(second["url"]))
    assert not np.array_equal(pixels(first["url"]), pixels(other["url"]))


def test_each_image_of_a_batch_is_reproducible_alone_from_its_seed(client):
    batch = generate(client, seed=100, num_images_per_prompt=2)
    alone = generate(client, seed=101)[0]
    assert batch[1]["seed"] == alone["seed"] == 101
    # Batched and single convolutions may round differently by one level, nothing more.
    assert np.abs(pixels(batch[1]["url"]) - pixels(alone["url"])).max() <= 2


def test_without_seed_a_random_one_is_reported_and_reproduces(client):
    image = generate(client)[0]
    assert 0 <= image["seed"] <= 2**32 - 1
    again = generate(client, seed=image["seed"])[0]
    assert np.array_equal(pixels(image["url"]), pixels(again["url"]))


def test_sizes_must_be_multiples_of_eight(client):
    response = client.post("/text-to-image", json={"prompt": "x", "width": 60, "height": 48})
    assert response.status_code == 400
    assert "multiples of 8" in response.json()["detail"]["msg"]


def test_sdxl_takes_a_second_prompt_after_a_bar_and_sd_refuses_it(app_factory, tiny_sd, tiny_sdxl):
    body = {
        "prompt": "a cat | oil painting",
        "width": 64,
        "height": 64,
        "num_inference_steps": 1,
        "seed": 3,
    }
    with running_client(app_factory([sd_entry(tiny_sdxl)])) as client:
        response = client.post("/text-to-image", json=body)
        assert response.status_code == 200, response.text
        single = client.post("/text-to-image", json={**body, "prompt": "a cat"}).json()
        # The second text encoder saw another prompt, so the image differs.
        assert not np.array_equal(
            pixels(response.json()["images"][0]["url"]), pixels(single["images"][0]["url"])
        )
    with running_client(app_factory([sd_entry(tiny_sd)])) as client:
        response = client.post("/text-to-image", json=body)
        assert response.status_code == 400
        assert "at most 1" in response.json()["detail"]["msg"]


def test_nsfw_flag_comes_from_the_configured_safety_checker(
    app_factory, tiny_sd, flagging_checker, passing_checker
):
    flagging = sd_entry(tiny_sd, runner={"safety_checker": str(flagging_checker)})
    with running_client(app_factory([flagging])) as client:
        flagged = generate(client, seed=5, num_images_per_prompt=2)
        assert [image["nsfw"] for image in flagged] == [True, True]
        # Flagged images are returned as generated, never blanked.
        assert pixels(flagged[0]["url"]).std() > 0
        unchecked = generate(client, seed=5, safety_check=False)
        assert unchecked[0]["nsfw"] is False
        # Same seed, same image (a batch of two may round one level differently).
        assert np.abs(pixels(unchecked[0]["url"]) - pixels(flagged[0]["url"])).max() <= 2
    passing = sd_entry(tiny_sd, runner={"safety_checker": str(passing_checker)})
    with running_client(app_factory([passing])) as client:
        assert [image["nsfw"] for image in generate(client, seed=5)] == [False]


def test_turbo_and_lightning_profiles_override_guidance_and_steps():
    from functions.text_to_image import ModelProfile, profile_for

    assert profile_for("stabilityai/sdxl-turbo") == ModelProfile(guidance_scale=0.0)
    lightning = profile_for("ByteDance/SDXL-Lightning-8step")
    assert (lightning.guidance_scale, lightning.num_inference_steps) == (0.0, 8)
    assert profile_for("SG161222/RealVisXL_V4.0_Lightning").num_inference_steps == 4
    assert profile_for("runwayml/stable-diffusion-v1-5") == ModelProfile()


def test_model_is_found_in_a_hugging_face_cache_layout(app_factory, tiny_sd, tmp_path):
    import shutil

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-cache" / "models--acme--tiny-sd"
    shutil.copytree(tiny_sd, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    entry = {"pipeline": "text-to-image", "model_id": "acme/tiny-sd", "warm": True}
    with running_client(app_factory([entry], model_dir=tmp_path / "hf-cache")) as client:
        assert client.get("/health").json() == {"status": "OK"}
        assert len(generate(client, seed=1)) == 1
