"""``histogram``: HSV colour-histogram correlation, kept for comparison (it ignores where colours
are, so keyframes collapse on ordinary footage)."""

from __future__ import annotations

import numpy as np

from . import WeightlessSimilarity


class HistogramSimilarity(WeightlessSimilarity):
    """HSV histogram correlation. Pearson correlation of two histograms is the cosine of the
    mean-centred, normalised histograms, so features are centred here and ``cosine`` applies."""

    model_id = "hsv-histogram-16x8x8"
    batch_size = 1
    bins = (16, 8, 8)

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        import cv2  # lazy: pods ask this class for its resources at DAG parse time
        rows = []
        for img in images_rgb:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(self.bins), [0, 180, 0, 256, 0, 256]).ravel()
            centred = hist / max(float(hist.sum()), 1.0)
            centred = centred - centred.mean()
            norm = float(np.linalg.norm(centred))
            rows.append(centred / norm if norm > 0 else centred)
        return np.stack(rows).astype(np.float32)
