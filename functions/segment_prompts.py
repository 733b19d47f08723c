"""The prompts of a segment-anything-2 request, read from the JSON-array strings of its form.

Livepeer's runner reads `point_coords`, `point_labels`, `box` and `mask_input` with
`np.array(json.loads(value))` (an empty string meaning "not given") and passes them on to SAM 2
unchecked, so a wrong shape fails deep inside the model. Here each is read and its shape and
values checked first, so every mistake is a 400 naming the field. Plain Python (no torch, no
numpy): the adapter checks a request before it takes any capacity.

Coordinates are in pixels of the uploaded image when `normalize_coords` is true (the default),
and in [0, 1] of its width and height when it is false, as in SAM 2's own predictor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from contract.errors import InputError

Points = tuple[tuple[float, float], ...]
# The model computes in float32 at most: a larger number would become infinite there.
FLOAT32_MAX = 3.4028234663852886e38
Mask = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class SegmentPrompts:
    """What a request asks SAM 2 to segment: points with their labels, a box, a previous mask."""

    point_coords: Points | None = None  # N x (x, y)
    point_labels: tuple[int, ...] | None = None  # N labels, 1 foreground, 0 background
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2
    mask_input: Mask | None = None  # the H x W of a 1 x H x W low-resolution mask (logits)

    @property
    def num_points(self) -> int:
        return len(self.point_coords or ())


def _json(field: str, text: str | None) -> Any:
    """The field's JSON value, or None when it is absent or empty (as the runner reads it)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # The runner's own wording for this refusal.
        raise InputError(f"Error parsing JSON for {field}: {exc}") from None
    except RecursionError:
        raise InputError(f"Error parsing JSON for {field}: nested too deeply") from None


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{field} must hold only numbers, got {json.dumps(value)[:40]}.")
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise InputError(
            f"{field} must hold only finite numbers (float32: at most {FLOAT32_MAX:.4g} in "
            f"size), got {value}."
        )
    return float(value)


def _row(field: str, value: Any, length: int, shape: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise InputError(f"{field} must be {shape}, got {json.dumps(value)[:60]}.")
    return tuple(_number(field, item) for item in value)


def _points(value: Any) -> Points:
    shape = "an Nx2 array of [x, y] points, e.g. [[120, 80]]"
    if not isinstance(value, list) or not value:
        raise InputError(f"point_coords must be {shape} with at least one point.")
    pairs = [_row("point_coords", point, 2, shape) for point in value]
    return tuple((x, y) for x, y in pairs)


def _labels(value: Any, count: int) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise InputError("point_labels must be an array of N labels (0 or 1), e.g. [1].")
    if len(value) != count:
        raise InputError(
            f"point_labels has {len(value)} labels for {count} points in point_coords: give "
            "one label per point."
        )
    labels = []
    for label in value:
        if _number("point_labels", label) not in (0.0, 1.0):
            raise InputError(f"point_labels must be 1 (foreground) or 0 (background), got {label}.")
        labels.append(int(label))
    return tuple(labels)


def _box(value: Any) -> tuple[float, float, float, float]:
    shape = "a length 4 array [x1, y1, x2, y2]"
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # one box as a 1x4 array
    x1, y1, x2, y2 = _row("box", value, 4, shape)
    if not (x1 < x2 and y1 < y2):
        raise InputError(
            f"box must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got {json.dumps(value)}."
        )
    return x1, y1, x2, y2


def _mask(value: Any) -> Mask:
    shape = "a 1xHxW array (one low-resolution mask, e.g. a previous answer's logits)"
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], list):
        raise InputError(f"mask_input must be {shape}.")
    rows = value[0]
    if not rows or not isinstance(rows[0], list) or not rows[0]:
        raise InputError(f"mask_input must be {shape}, with at least one row and column.")
    width = len(rows[0])
    return tuple(_row("mask_input", row, width, f"{shape}: every row as long") for row in rows)


def _within(field: str, x: float, y: float, size: tuple[int, int], normalized: bool) -> None:
    """A coordinate against the image: pixels (0..width, 0..height) or, unnormalized, 0..1."""
    right, bottom = (1.0, 1.0) if not normalized else (float(size[0]), float(size[1]))
    if not (0.0 <= x <= right and 0.0 <= y <= bottom):
        if normalized:
            where = f"the {size[0]}x{size[1]} image (0 <= x <= {size[0]}, 0 <= y <= {size[1]})"
        else:
            where = "[0, 1] (normalize_coords=false: coordinates are fractions of the image)"
        raise InputError(f"{field} ({x:g}, {y:g}) is outside {where}.")


def parse_prompts(
    *,
    point_coords: str | None,
    point_labels: str | None,
    box: str | None,
    mask_input: str | None,
    normalize_coords: bool,
    image_size: tuple[int, int],
) -> SegmentPrompts:
    """The request's prompts, checked against the uploaded image's (width, height).

    Raises InputError, naming the field, for: unparsable JSON, a shape other than the spec's
    (Nx2 points, N labels of 0 or 1, a length 4 box with x1 < x2 and y1 < y2, a 1xHxW mask),
    labels without points or points without labels, a point or box corner outside the image,
    and a request with neither points nor a box.
    """
    coords_value = _json("point_coords", point_coords)
    labels_value = _json("point_labels", point_labels)
    box_value = _json("box", box)
    mask_value = _json("mask_input", mask_input)

    points = labels = None
    if coords_value is not None:
        points = _points(coords_value)
        if labels_value is None:
            raise InputError(
                "point_labels must be given with point_coords: one label per point, "
                "1 (foreground) or 0 (background)."
            )
        labels = _labels(labels_value, len(points))
        for x, y in points:
            _within("point_coords point", x, y, image_size, normalize_coords)
    elif labels_value is not None:
        raise InputError("point_labels was given without point_coords.")

    corners = _box(box_value) if box_value is not None else None
    if corners is not None:
        _within("box corner", corners[0], corners[1], image_size, normalize_coords)
        _within("box corner", corners[2], corners[3], image_size, normalize_coords)

    if points is None and corners is None:
        raise InputError(
            "Give a prompt to segment: point_coords with point_labels, or a box "
            "(mask_input alone is not a prompt)."
        )
    mask = _mask(mask_value) if mask_value is not None else None
    return SegmentPrompts(point_coords=points, point_labels=labels, box=corners, mask_input=mask)
