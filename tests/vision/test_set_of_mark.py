"""Set-of-Mark rendering: contours and IDs that contrast with the object, small objects dropped,
box JSON in numeric ID order, deterministic bytes."""

from __future__ import annotations

import json

import cv2
import numpy as np

from glave_tasks.vision import set_of_mark
from glave_tasks.vision.set_of_mark import contrast_color, label_anchor, render


def _scene() -> tuple[np.ndarray, dict[int, np.ndarray]]:
    image = np.full((120, 160, 3), 128, np.uint8)
    image[10:60, 10:70] = 240  # a bright object
    image[60:110, 90:150] = 15  # a dark object
    masks = {id_: np.zeros((120, 160), bool) for id_ in (2, 10, 3)}
    masks[2][10:60, 10:70] = True
    masks[10][60:110, 90:150] = True
    masks[3][2:12, 140:150] = True  # 10x10: below min_object_px
    return image, masks


def _decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_small_objects_are_dropped_from_picture_and_box_json() -> None:
    image, masks = _scene()
    marked = render(image, masks, min_object_px=16)
    assert marked.object_ids == [2, 10]
    assert json.loads(marked.boxes_json) == {
        "2": {"x1": 10, "y1": 10, "x2": 70, "y2": 60}, "10": {"x1": 90, "y1": 60, "x2": 150, "y2": 110}}
    assert list(json.loads(marked.boxes_json)) == ["2", "10"]  # numeric order, not string order
    out = _decode(marked.png)
    np.testing.assert_array_equal(out[0:14, 138:152], image[0:14, 138:152])  # the small one is untouched


def test_contours_contrast_with_object_brightness() -> None:
    image, masks = _scene()
    out = _decode(render(image, masks, thickness=2).png).astype(int)
    luma = out @ np.array([0.299, 0.587, 0.114])
    # Contour pixels on the bright object's edge are dark, on the dark object's edge bright.
    assert luma[10:12, 20:60].mean() < 110
    assert luma[60:62, 100:140].mean() > 150
    assert sum(contrast_color(2, 240)) < sum(contrast_color(2, 15))


def test_id_is_printed_at_the_mask_pixel_nearest_the_centroid() -> None:
    ring = np.zeros((60, 60), bool)
    cv2.circle(ring.view(np.uint8), (30, 30), 20, 1, thickness=4)
    x, y = label_anchor(ring)
    assert ring[y, x]  # on the mask, although the centroid (30, 30) is not
    image = np.full((60, 60, 3), 200, np.uint8)
    out = _decode(render(image, {7: ring}).png)
    assert (out[y - 3:y + 4, x - 3:x + 4] != image[y - 3:y + 4, x - 3:x + 4]).any()


def test_rendering_is_deterministic() -> None:
    image, masks = _scene()
    first = render(image, masks)
    second = render(image.copy(), {k: masks[k].copy() for k in reversed(list(masks))})
    assert first.png == second.png and first.boxes_json == second.boxes_json


def test_no_objects_gives_the_clean_frame() -> None:
    image, _ = _scene()
    marked = render(image, {})
    assert marked.object_ids == [] and marked.boxes_json == "{}"
    np.testing.assert_array_equal(_decode(marked.png), image)


def test_masks_at_another_resolution_are_scaled_to_the_frame() -> None:
    image = np.zeros((200, 400, 3), np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[10:40, 20:80] = True
    assert set_of_mark.render(image, {1: mask}).boxes[1] == {"x1": 40, "y1": 20, "x2": 160, "y2": 80}


def test_fast_png_settings_keep_the_same_pixels() -> None:
    """Level 1 with the 'up' filter is lossless: the picture equals the one of the earlier settings."""
    image, masks = _scene()
    fast = render(image, masks)
    earlier = render(image, masks, png_compression=3, png_filter_up=False)
    assert np.array_equal(_decode(fast.png), _decode(earlier.png))
    assert fast.boxes == earlier.boxes
