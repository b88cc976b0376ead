"""COCO-style RLE of masks: column-major runs that start with zeros, lossless round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from glave_tasks import schemas
from glave_tasks.vision import rle


def test_counts_are_column_major_and_start_with_zeros() -> None:
    mask = np.array([[0, 1], [1, 1]], bool)  # column-major: 0,1 | 1,1
    assert rle.encode(mask) == {"height": 2, "width": 2, "counts": [1, 3]}
    assert rle.encode(np.ones((2, 2), bool))["counts"] == [0, 4]
    assert rle.encode(np.zeros((2, 3), bool))["counts"] == [6]


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (240, 320)])
def test_round_trip_is_lossless(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    mask = rng.random(shape) > 0.6
    encoded = rle.encode(mask)
    assert sum(encoded["counts"]) == mask.size
    assert rle.area(encoded) == int(mask.sum())
    np.testing.assert_array_equal(rle.decode(encoded), mask)


def test_round_trip_through_the_tracks_schema_column() -> None:
    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:33] = True
    column = pa.array([rle.encode(mask)], type=schemas.MASK_RLE)
    np.testing.assert_array_equal(rle.decode(column.to_pylist()[0]), mask)


def test_corrupt_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected 12"):
        rle.decode({"height": 3, "width": 4, "counts": [5, 2]})
