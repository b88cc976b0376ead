"""``layout`` (the default): a weightless picture-layout descriptor calibrated to behave like the
method's CLIP rule at the same threshold (calibration in the package docstring)."""

from __future__ import annotations

import numpy as np

from . import WeightlessSimilarity


class LayoutSimilarity(WeightlessSimilarity):
    """Gradient and colour layout on a coarse grid (see the module docstring for the calibration).

    Frames are first brought to one analysis size (448x252, aspect not kept: only frames of the
    same video are compared), so the score does not depend on the video's resolution."""

    model_id = "layout-grad8x5-lab16x9-w0.5"
    batch_size = 1
    analysis_size = (448, 252)
    blur_sigma = 1.0  # before the gradients: the same picture at any source resolution scores alike
    edge_grid = (8, 5)
    colour_grid = (16, 9)
    gradient_weight = 0.5

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        return np.stack([self._describe(img) for img in images_rgb]).astype(np.float32)

    def _describe(self, img: np.ndarray) -> np.ndarray:
        import cv2  # lazy: pods ask this class for its resources at DAG parse time
        small = cv2.resize(img, self.analysis_size, interpolation=cv2.INTER_AREA)
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), self.blur_sigma)
        magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
        edges = _centred_unit(cv2.resize(magnitude, self.edge_grid, interpolation=cv2.INTER_AREA))
        if not edges.any():
            # A featureless frame (one flat colour): every such frame has the same "layout", so
            # two of them compare by colour alone and one against a real picture scores low.
            edges[0] = 1.0
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        colour = _centred_unit(cv2.resize(lab, self.colour_grid, interpolation=cv2.INTER_AREA))
        w = self.gradient_weight
        # Each part has unit norm, so the cosine of the concatenation is the weighted mean of the
        # parts' correlations (and still 1.0 for identical frames).
        return np.concatenate([np.sqrt(w) * edges, np.sqrt(1.0 - w) * colour])


def _centred_unit(values: np.ndarray) -> np.ndarray:
    flat = values.astype(np.float64).ravel()
    flat = flat - flat.mean()
    norm = float(np.linalg.norm(flat))
    # Nothing varies (a flat picture): the zero vector; the caller decides what that means.
    return np.asarray(flat / norm if norm > 1e-9 else flat)
