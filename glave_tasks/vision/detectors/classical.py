"""CPU default detector: OpenCV's HOG people detector plus MOG2 background-subtraction blobs.

It needs no weights and finds real objects in real footage: people (HOG + linear SVM, label
``person``) and anything that moves against a steady background (label ``moving object``). The
background model is per shot: MOG2 first learns each shot from all its sampled frames (two
passes), then labels every frame against that model without learning, so objects are found from
the first sample of a shot on and a moving object leaves no ghost where it started. A pixel is
background when it shows that colour most of the time (``backgroundRatio`` 0.6), so an object
that crosses a pixel in a minority of samples is foreground there.

Masks: a motion blob's mask is its foreground component; a HOG person takes the foreground
pixels inside its box when motion overlaps it, else the filled box.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...backends import Backend
from ...config import DetectorConfig
from ...contract import Resources
from ..types import Detection, VideoFrames, box_mask

MOTION_LABEL = "moving object"
HOG_MIN_WEIGHT = 0.5  # SVM margin below which HOG hits are mostly clutter


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale >= 1:
        return image
    size = (max(1, int(round(image.shape[1] * scale))), max(1, int(round(image.shape[0] * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class ClassicalDetector(Backend):
    backend = "classical"
    warm_imports = ("cv2",)

    @classmethod
    def model_ids(cls, config: DetectorConfig) -> dict[str, str]:
        return {"detector": "opencv:hog-default-people+mog2"}

    @classmethod
    def resources(cls, config: DetectorConfig) -> Resources:
        return Resources(cpu="2", memory="4Gi")

    def __init__(self, config: DetectorConfig, *, min_object_px: int = 16, **_: Any) -> None:
        import cv2

        self.config = config
        self.min_object_px = min_object_px
        self.find_people = "person" in config.classes
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.model_id = f"opencv-{cv2.__version__}:hog-default-people+mog2"

    def detect(self, video: VideoFrames) -> list[list[Detection]]:
        out: list[list[Detection]] = [[] for _ in range(len(video))]
        start = 0
        while start < len(video):
            end = start
            while end < len(video) and video.shots[end] == video.shots[start]:
                end += 1
            for i, dets in zip(range(start, end), self._detect_shot(video.images[start:end])):
                out[i] = dets
            start = end
        return out

    def _detect_shot(self, images: list[np.ndarray]) -> list[list[Detection]]:
        import cv2

        height, width = images[0].shape[:2]
        # Two working sizes: MOG2 needs only coarse blobs (its cost is per pixel, and its masks are
        # scaled back), HOG needs its 64x128 window to fit people of a useful size.
        motion_scale = min(1.0, self.config.motion_max_side / max(height, width))
        hog_scale = min(1.0, self.config.hog_max_side / max(height, width))
        small = [_resized(im, motion_scale) for im in images]
        # Blur and opening/closing kernels: 5 px at up to 640 px wide, smaller when the background
        # model works below that, so they cover the same share of the picture.
        reduction = max(small[0].shape[:2]) / min(max(height, width), 640)
        k = 2 * max(1, int(2.5 * reduction)) + 1
        blurred = [cv2.GaussianBlur(im, (k, k), 0) for im in small]
        mog = cv2.createBackgroundSubtractorMOG2(history=max(len(images), 2), varThreshold=25, detectShadows=False)
        mog.setBackgroundRatio(0.6)
        if len(images) >= 3:  # fewer samples cannot tell motion from background
            for _ in range(2):
                for im in blurred:
                    mog.apply(im, learningRate=1.0 / len(images))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        min_side = self.min_object_px * motion_scale
        results: list[list[Detection]] = []
        for im, image in zip(blurred, images):
            if len(images) >= 3:
                fg = mog.apply(im, learningRate=0.0)
                fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
                fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel)
            else:
                fg = np.zeros(im.shape[:2], np.uint8)
            blobs = self._blobs(fg, min_side)
            people = []
            if self.find_people:
                # HOG boxes in motion-model coordinates, so both kinds of detection merge there.
                people = [(tuple(c * motion_scale / hog_scale for c in box), score)
                          for box, score in self._people(_resized(image, hog_scale))]
            results.append(self._merge(people, blobs, fg > 0, motion_scale, (height, width)))
        return results

    def _blobs(self, fg: np.ndarray, min_side: float) -> list[tuple[tuple[float, ...], float, np.ndarray]]:
        import cv2

        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        # Real footage (foliage, water, slight camera shake) leaves many small foreground
        # fragments: keep blobs of a meaningful size, and only the largest few per frame.
        min_area = self.config.min_blob_area_frac * fg.shape[0] * fg.shape[1]
        order = sorted(range(1, n), key=lambda k: -int(stats[k][4]))
        blobs = []
        for k in order:
            x, y, w, h, area = stats[k]
            if w < min_side or h < min_side or area < min_area:
                continue
            if len(blobs) >= self.config.max_objects:
                break
            # Score: how solidly the blob fills its box (1 for a rectangle, 0.79 for a disc).
            blobs.append(((float(x), float(y), float(x + w), float(y + h)), float(area) / float(w * h), labels == k))
        return blobs

    def _people(self, image: np.ndarray) -> list[tuple[tuple[float, ...], float]]:
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if min(gray.shape) < 128:
            return []
        rects, weights = self.hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=self.config.hog_scale,
                                                  groupThreshold=self.config.hog_group_threshold)
        if len(rects) == 0:
            return []
        weights = np.asarray(weights, float).ravel()
        boxes = [[int(x), int(y), int(w), int(h)] for x, y, w, h in rects]
        keep = cv2.dnn.NMSBoxes(boxes, weights.tolist(), HOG_MIN_WEIGHT, 0.4)
        people = []
        for i in np.asarray(keep, int).ravel():
            x, y, w, h = boxes[i]
            score = float(1.0 / (1.0 + np.exp(-weights[i])))
            if score >= self.config.confidence:
                people.append(((float(x), float(y), float(x + w), float(y + h)), score))
        return people

    def _merge(self, people: list, blobs: list, fg: np.ndarray, scale: float, shape: tuple[int, int]) -> list[Detection]:
        import cv2

        height, width = shape

        def full(mask: np.ndarray) -> np.ndarray:
            if scale >= 1:
                return mask
            return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)

        def up(box: tuple[float, ...]) -> tuple[float, float, float, float]:
            return (min(box[0] / scale, width), min(box[1] / scale, height), min(box[2] / scale, width), min(box[3] / scale, height))

        dets: list[Detection] = []
        used: set[int] = set()
        for box, score in people:
            overlapping = [i for i, b in enumerate(blobs) if box_iou(box, b[0]) >= 0.3]
            used.update(overlapping)
            inside = box_mask(box, *fg.shape) & fg
            mask = full(inside) if overlapping and inside.any() else box_mask(up(box), height, width)
            dets.append(Detection(up(box), score, "person", mask))
        for i, (box, score, mask) in enumerate(blobs):
            if i not in used:
                dets.append(Detection(up(box), score, MOTION_LABEL, full(mask)))
        return dets
