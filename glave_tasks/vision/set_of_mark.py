"""Set-of-Mark visual prompts: a thin contour and a numeric ID per tracked object.

Each object's contour (``cv2.findContours`` on its mask) is drawn in a colour that contrasts
with the object's mean brightness (dark objects get a light colour, light objects a dark one;
the hue follows the ID so neighbours differ), and its ID is printed at the mask pixel nearest
the mask's centroid (the centroid itself can lie outside a non-convex mask). Objects whose box is
smaller than ``min_object_px`` on either side are dropped, from the picture and from the box
JSON. Rendering is deterministic: the same frame and masks give the same PNG bytes.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass

import numpy as np

from .types import mask_box

GOLDEN = 0.618033988749895  # hue step: consecutive IDs get well separated hues


@dataclass
class MarkedFrame:
    png: bytes
    boxes: dict[int, dict[str, int]]  # id -> {"x1","y1","x2","y2"}, kept objects only
    object_ids: list[int]

    @property
    def boxes_json(self) -> str:
        return boxes_json(self.boxes)


def boxes_json(boxes: dict[int, dict[str, int]]) -> str:
    """{"<id>": {"x1":..,"y1":..,"x2":..,"y2":..}} with IDs in numeric order."""
    return json.dumps({str(k): boxes[k] for k in sorted(boxes)}, separators=(",", ":"))


def mean_luma(image: np.ndarray, mask: np.ndarray) -> float:
    pixels = image[mask].astype(np.float64)
    return float((pixels @ np.array([0.299, 0.587, 0.114])).mean()) if len(pixels) else 0.0


def contrast_color(track_id: int, luma: float) -> tuple[int, int, int]:
    """RGB colour for an object: the ID picks the hue, the object's brightness picks the value."""
    hue = (track_id * GOLDEN) % 1.0
    value, sat = (0.35, 0.9) if luma >= 128 else (1.0, 0.45)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, value)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def label_anchor(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel nearest the mask's centroid."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return int(xs[i]), int(ys[i])


def render(
    image: np.ndarray,
    masks: dict[int, np.ndarray],
    *,
    thickness: int = 2,
    min_object_px: int = 16,
    png_compression: int = 1,
    png_filter_up: bool = True,
) -> MarkedFrame:
    """Draw the Set-of-Mark prompt for ``masks`` (id -> bool HxW) on an RGB ``image``."""
    import cv2

    height, width = image.shape[:2]
    canvas = np.ascontiguousarray(image[:, :, ::-1].copy())  # BGR for OpenCV
    boxes: dict[int, dict[str, int]] = {}
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.4, min(height, width) / 900)
    font_thick = max(1, int(round(font_scale * 1.5)))
    labels: list[tuple[int, tuple[int, int], tuple[int, int, int]]] = []
    for track_id in sorted(masks):
        mask = masks[track_id]
        if mask.shape != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
        box = mask_box(mask)
        if box is None or box[2] - box[0] < min_object_px or box[3] - box[1] < min_object_px:
            continue
        boxes[track_id] = {"x1": int(box[0]), "y1": int(box[1]), "x2": int(box[2]), "y2": int(box[3])}
        color = contrast_color(track_id, mean_luma(image, mask))
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, color[::-1], thickness, lineType=cv2.LINE_8)
        labels.append((track_id, label_anchor(mask), color))
    # Labels after all contours, so no contour is drawn over an ID.
    for track_id, (x, y), color in labels:
        text = str(track_id)
        (tw, th), base = cv2.getTextSize(text, font, font_scale, font_thick)
        x0 = min(max(x - tw // 2 - 2, 0), max(width - tw - 4, 0))
        y0 = min(max(y - th // 2 - 2, 0), max(height - th - base - 4, 0))
        cv2.rectangle(canvas, (x0, y0), (x0 + tw + 4, y0 + th + base + 4), color[::-1], thickness=-1)
        ink = (0, 0, 0) if sum(c * w for c, w in zip(color, (0.299, 0.587, 0.114))) >= 128 else (255, 255, 255)
        cv2.putText(canvas, text, (x0 + 2, y0 + th + 2), font, font_scale, ink, font_thick, lineType=cv2.LINE_8)
    # zlib level 1 with the "up" row filter encodes a 640x360 frame about twice as fast as level 3
    # with adaptive filters, for a file within a few percent of the size (the PNG stays lossless).
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    if png_filter_up and hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    ok, buf = cv2.imencode(".png", canvas, params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return MarkedFrame(buf.tobytes(), boxes, sorted(boxes))
