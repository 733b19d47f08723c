"""segment-anything-2 over real HTTP, as go-livepeer sends it, on a tiny random-weight SAM 2.

The answer's three fields are strings, as the runner writes them: `str()` of nested lists of
floats (masks C x height x width, scores C, low-resolution logits C x 16 x 16 for the tiny model,
whose square input is 64x64), sorted by descending score.
"""

from __future__ import annotations

import ast
import json

import httpx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.cancel import GenerationCancelled
from functions.segment_anything_2 import (
    SegmentAnything2,
    Segmentation,
    check_inputs,
    masks_response_strings,
)
from tests.support.apps import make_app, model_entry, running_client, serve
from tests.support.livepeer_multipart import noise_image, png_bytes, post_image

ROUTE = "/segment-anything-2"
WIDTH, HEIGHT = 64, 48
LOW_RES = 16
POINT = {"point_coords": "[[20, 12]]", "point_labels": "[1]"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_sam2):
    tmp = tmp_path_factory.mktemp("sam2")
    entries = [model_entry("segment-anything-2", tiny_sam2, "test/tiny-sam2")]
    limits = {"max_segment_input_pixels": 80 * 60, "max_segment_points": 5}
    with serve(make_app(tmp, entries, limits=limits)) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=120) as client:
        yield client


def segment(http, image=None, **fields):
    response = post_image(
        http, ROUTE, png_bytes(WIDTH, HEIGHT) if image is None else image, **fields
    )
    assert response.status_code == 200, response.text
    return response.json()


def parsed(answer):
    """The three strings read back as Python lists, checked to be exactly their `str()`."""
    assert set(answer) == {"masks", "scores", "logits"}
    values = {}
    for name in ("masks", "scores", "logits"):
        assert isinstance(answer[name], str)
        value = ast.literal_eval(answer[name])
        assert str(value) == answer[name], f"{name} is not str() of a list"
        values[name] = value
    return values["masks"], values["scores"], values["logits"]


def shape(value):
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0]
    return tuple(dims)


def floats(value):
    return [x for x in np.asarray(value, dtype=object).ravel()]


def refused(http, image=None, **fields):
    response = post_image(
        http, ROUTE, png_bytes(WIDTH, HEIGHT) if image is None else image, **fields
    )
    assert response.status_code == 400, response.text
    return response.json()["detail"]["msg"]


# --- answers ---------------------------------------------------------------------------------


def test_three_masks_of_the_image_size_with_scores_and_logits_by_default(http):
    masks, scores, logits = parsed(segment(http, **POINT))
    assert shape(masks) == (3, HEIGHT, WIDTH)
    assert shape(scores) == (3,)
    assert shape(logits) == (3, LOW_RES, LOW_RES)
    assert all(type(x) is float for x in floats(masks) + scores + floats(logits))
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # return_logits defaults to true: un-thresholded masks, not only 0 and 1.
    assert set(floats(masks)) - {0.0, 1.0}
    assert all(-32.0 <= x <= 32.0 for x in floats(logits))


def test_multimask_output_false_gives_one_mask(http):
    masks, scores, logits = parsed(segment(http, multimask_output=False, **POINT))
    assert (shape(masks), shape(scores), shape(logits)) == (
        (1, HEIGHT, WIDTH),
        (1,),
        (1, LOW_RES, LOW_RES),
    )


def test_return_logits_false_gives_binary_masks_from_the_same_logits(http):
    with_logits = parsed(segment(http, **POINT))
    binary = parsed(segment(http, return_logits=False, **POINT))
    assert set(floats(binary[0])) <= {0.0, 1.0}
    assert binary[1:] == with_logits[1:]
    expected = (np.asarray(with_logits[0]) > 0).astype(np.float32)
    assert np.array_equal(np.asarray(binary[0], dtype=np.float32), expected)


def test_the_answer_is_the_runners_encoding_of_the_models_output(http, tiny_sam2):
    model = SegmentAnything2.load(tiny_sam2, device=torch.device("cpu"), dtype=torch.float32)
    prompts = check_inputs(
        point_coords="[[20, 12], [40, 30]]",
        point_labels="[1, 0]",
        box=None,
        mask_input=None,
        normalize_coords=True,
        image_size=(WIDTH, HEIGHT),
    )
    local = masks_response_strings(model.segment(noise_image(WIDTH, HEIGHT), prompts))
    answer = segment(http, point_coords="[[20, 12], [40, 30]]", point_labels="[1, 0]")
    assert (answer["masks"], answer["scores"], answer["logits"]) == local


def test_strings_are_sorted_by_descending_score_as_the_runner_does():
    result = Segmentation(
        masks=np.arange(3, dtype=np.float32).reshape(3, 1, 1),
        scores=np.array([0.25, 0.75, 0.5], dtype=np.float32),
        logits=np.array([[[-1.5]], [[2.5]], [[0.1]]], dtype=np.float32),
    )
    masks, scores, logits = masks_response_strings(result)
    assert masks == "[[[1.0]], [[2.0]], [[0.0]]]"
    assert scores == "[0.75, 0.5, 0.25]"
    # float32 values printed as Python floats, as numpy's tolist() gives them.
    assert logits == "[[[2.5]], [[0.10000000149011612]], [[-1.5]]]"


def test_normalize_coords_false_takes_fractions_of_the_image(http):
    in_pixels = segment(http, point_coords="[[32, 24]]", point_labels="[1]")
    in_fractions = segment(
        http, point_coords="[[0.5, 0.5]]", point_labels="[1]", normalize_coords=False
    )
    assert in_fractions == in_pixels
    elsewhere = segment(
        http, point_coords="[[0.1, 0.9]]", point_labels="[1]", normalize_coords=False
    )
    assert elsewhere != in_pixels


def test_a_box_alone_or_with_points_is_a_prompt(http):
    box = parsed(segment(http, box="[4, 4, 40, 30]"))
    assert shape(box[0]) == (3, HEIGHT, WIDTH)
    as_1x4 = parsed(segment(http, box="[[4, 4, 40, 30]]"))
    assert as_1x4 == box
    both = parsed(segment(http, box="[4, 4, 40, 30]", **POINT))
    assert both != box


def test_mask_input_from_a_previous_answer_steers_the_next(http):
    first = segment(http, **POINT)
    _, _, logits = parsed(first)
    again = segment(http, mask_input=json.dumps([logits[0]]), **POINT)
    masks, _, next_logits = parsed(again)
    assert (shape(masks), shape(next_logits)) == ((3, HEIGHT, WIDTH), (3, LOW_RES, LOW_RES))
    assert again != first


def test_empty_fields_count_as_not_given(http):
    assert segment(http, box="", mask_input="", **POINT) == segment(http, **POINT)


# --- refusals --------------------------------------------------------------------------------


def test_no_points_and_no_box_is_a_400(http):
    assert refused(http).startswith("Give a prompt to segment")
    assert refused(http, mask_input=json.dumps([[[0.0] * LOW_RES] * LOW_RES])).startswith(
        "Give a prompt to segment"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"point_coords": "[[65, 10]]"}, "point_coords point (65, 10) is outside the 64x48 image"),
        ({"point_coords": "[[10, -1]]"}, "point_coords point (10, -1) is outside the 64x48 image"),
        ({"point_coords": "[[10, 49]]"}, "point_coords point (10, 49) is outside the 64x48 image"),
        (
            {"point_coords": "[[0.5, 1.5]]", "normalize_coords": False},
            "point_coords point (0.5, 1.5) is outside [0, 1]",
        ),
    ],
)
def test_points_outside_the_image_are_a_400(http, fields, message):
    assert refused(http, **{"point_labels": "[1]", **fields}).startswith(message)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"point_coords": "[[1, 2], [3, 4]]", "point_labels": "[1]"},
            "point_labels has 1 labels for 2 points",
        ),
        ({"point_coords": "[[1, 2]]", "point_labels": "[1, 0]"}, "point_labels has 2 labels"),
        ({"point_coords": "[[1, 2]]"}, "point_labels must be given with point_coords"),
        ({"point_labels": "[1]", "box": "[1, 1, 9, 9]"}, "point_labels was given without"),
        ({"point_coords": "[[1, 2]]", "point_labels": "[2]"}, "point_labels must be 1"),
        ({"point_coords": "[[1, 2]]", "point_labels": "[-1]"}, "point_labels must be 1"),
        ({"point_coords": "[[1, 2]]", "point_labels": "[0.5]"}, "point_labels must be 1"),
        ({"point_coords": "[[1, 2]]", "point_labels": "[true]"}, "point_labels must hold"),
        ({"point_coords": "[[1, 2]]", "point_labels": "1"}, "point_labels must be an array"),
    ],
)
def test_labels_that_do_not_match_the_points_are_a_400(http, fields, message):
    assert message in refused(http, **fields)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ("[40, 4, 4, 30]", "x1 < x2 and y1 < y2"),
        ("[4, 30, 40, 30]", "x1 < x2 and y1 < y2"),
        ("[4, 4, 40]", "box must be a length 4 array"),
        ("[[4, 4, 40, 30], [1, 1, 2, 2]]", "box must be a length 4 array"),
        ("[4, 4, 70, 30]", "box corner (70, 30) is outside the 64x48 image"),
        ('[4, 4, "40", 30]', "box must hold only numbers"),
    ],
)
def test_bad_boxes_are_a_400(http, box, message):
    assert message in refused(http, box=box)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"point_coords": "[[1, 2]", **{"point_labels": "[1]"}},
            "Error parsing JSON for point_coords",
        ),
        ({**POINT, "point_labels": "one"}, "Error parsing JSON for point_labels"),
        ({"box": "[1, 2, 3, 4"}, "Error parsing JSON for box"),
        ({**POINT, "mask_input": "[[[0.0]]"}, "Error parsing JSON for mask_input"),
        ({"point_coords": "[10, 20]", "point_labels": "[1]"}, "point_coords must be an Nx2 array"),
        ({"point_coords": "[]", "point_labels": "[]"}, "with at least one point"),
        ({"point_coords": "null", "point_labels": "[1]"}, "point_labels was given without"),
        ({"point_coords": "[[1, 2, 3]]", "point_labels": "[1]"}, "point_coords must be an Nx2"),
        ({"point_coords": "[[NaN, 2]]", "point_labels": "[1]"}, "only finite numbers"),
        ({**POINT, "mask_input": json.dumps([[[1e300] * 16] * 16])}, "only finite numbers"),
        ({"point_coords": "[" * 100_000, "point_labels": "[1]"}, "Error parsing JSON"),
        ({**POINT, "mask_input": "[[0.0, 1.0]]"}, "mask_input must be a 1xHxW array"),
        ({**POINT, "mask_input": "[[[0.0, 1.0], [2.0]]]"}, "every row as long"),
    ],
)
def test_unparsable_or_misshapen_arrays_are_a_400(http, fields, message):
    assert message in refused(http, **fields)


def test_a_mask_input_of_another_size_than_the_models_is_a_400(http):
    mask = json.dumps([[[0.0] * 8] * 8])
    assert refused(http, mask_input=mask, **POINT) == (
        "mask_input must be 1x16x16 for this model (a previous answer's logits), got 1x8x8."
    )


def test_a_corrupt_image_is_a_400(http):
    assert refused(http, image=png_bytes(WIDTH, HEIGHT)[:200], **POINT) == (
        "The uploaded image file is corrupt or truncated."
    )
    assert "not an image" in refused(http, image=b"hello", **POINT)


def test_an_image_under_the_smallest_size_of_every_image_route_is_a_400(http):
    assert refused(http, image=png_bytes(8, 20), box="[1, 1, 4, 4]") == (
        "The image must be at least 16x16 pixels, got 8x20."
    )


def test_limits_on_image_pixels_and_points_name_their_settings(http):
    assert refused(http, image=png_bytes(81, 60), **POINT) == (
        "The uploaded image declares 81x60 = 4860 pixels, over the limit "
        "ADAPTER_MAX_SEGMENT_INPUT_PIXELS=4800."
    )
    six = json.dumps([[1, 1]] * 6)
    assert refused(http, point_coords=six, point_labels=json.dumps([1] * 6)) == (
        "point_coords holds 6 points, over the limit ADAPTER_MAX_SEGMENT_POINTS=5."
    )


def test_go_livepeers_units_are_the_input_images_pixels(tmp_path, tiny_sam2):
    from prometheus_client.parser import text_string_to_metric_families

    app = make_app(tmp_path, [model_entry("segment-anything-2", tiny_sam2, "test/tiny-sam2")])
    with running_client(app) as client:
        assert post_image(client, ROUTE, png_bytes(40, 30), **POINT).status_code == 200
        assert post_image(client, ROUTE, png_bytes(40, 30)).status_code == 400
        text = client.get("/metrics").text
    units = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "runner_units_total"
    }
    assert units == {(("model", "test/tiny-sam2"), ("pipeline", "segment-anything-2")): 40 * 30}


# --- the model outside HTTP ------------------------------------------------------------------


def test_a_gone_client_stops_before_the_mask_decoder(tiny_sam2):
    model = SegmentAnything2.load(tiny_sam2, device=torch.device("cpu"), dtype=torch.float32)
    prompts = check_inputs(
        point_coords=POINT["point_coords"],
        point_labels=POINT["point_labels"],
        box=None,
        mask_input=None,
        normalize_coords=True,
        image_size=(WIDTH, HEIGHT),
    )
    with pytest.raises(GenerationCancelled):
        model.segment(noise_image(WIDTH, HEIGHT), prompts, should_stop=lambda: True)


def test_a_folder_without_a_transformers_sam2_is_refused_saying_why(tmp_path):
    (tmp_path / "sam2_hiera_large.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="no transformers SAM 2 model") as caught:
        SegmentAnything2.load(tmp_path, device=torch.device("cpu"), dtype=torch.float32)
    assert "sam2_hiera_large.pt" in str(caught.value)


# --- anything in the prompt fields is a 200 or a clear 400, never a 500 ----------------------

_NUMBERS = st.one_of(
    st.integers(-5, 70),
    st.floats(-2.0, 70.0, allow_nan=False),
    st.sampled_from([0, 1, 0.5, 1e308, -0.0]),
)
_JSON = st.recursive(
    st.one_of(_NUMBERS, st.booleans(), st.none(), st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)
_FIELD = st.one_of(
    st.none(),
    _JSON.map(json.dumps),
    st.text(max_size=12),
    st.sampled_from(["NaN", "[[NaN, 1]]", "[[1e999, 1]]", "[[20, 12]]", "[1]", "[1, 2, 30, 40]"]),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    point_coords=_FIELD,
    point_labels=_FIELD,
    box=_FIELD,
    mask_input=_FIELD,
    normalize_coords=st.booleans(),
)
def test_any_prompt_fields_get_a_200_or_a_400(
    http, point_coords, point_labels, box, mask_input, normalize_coords
):
    fields = {
        name: value
        for name, value in (
            ("point_coords", point_coords),
            ("point_labels", point_labels),
            ("box", box),
            ("mask_input", mask_input),
        )
        if value is not None
    }
    body = png_bytes(WIDTH, HEIGHT)
    response = post_image(http, ROUTE, body, normalize_coords=normalize_coords, **fields)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["detail"]["msg"]
    else:
        parsed(response.json())
