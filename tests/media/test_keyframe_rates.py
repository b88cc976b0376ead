"""Keyframe rates with the default config on real footage, edited the way uploads are.

The method keeps 0.31-0.44 keyframes per second of edited YouTube video (62-86% of the 2 s
candidates). Only one real clip ships with the tests (Big Buck Bunny, 5.3 s, one shot), so the
edited videos are cut from it (``tests/support/edited_footage.py``: cuts, punch-ins, pans, mirrored
angles, reversed and slowed takes, freeze frames). Measured here with the default config:
short film 0.38/s, vlog 0.35/s (typical pacing, a cut every 5-6 s), fast montage 0.46/s (a cut
every 3 s: nearly every candidate follows a cut), a held still 2 keyframes (first and tail).
The HSV histogram the default used before keeps 0.27/s and 0.25/s on the typical edits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks.media.scan import ScanResult, scan_video
from glave_tasks.media.similarity.histogram import HistogramSimilarity
from glave_tasks.media.similarity.layout import LayoutSimilarity
from tests.support import BIG_BUCK_BUNNY, make_config
from tests.support.edited_footage import MONTAGE, SHORT_FILM, STILL, VLOG, source_frames, write_edit

pytestmark = pytest.mark.slow  # encodes and scans about three minutes of video


def _scan(path: Path, tmp: Path, backend: object | None = None) -> ScanResult:
    cfg = make_config(tmp).ingest  # the default ingest config: layout similarity, 0.93, 2 s
    assert cfg.similarity_backend == "layout" and cfg.similarity_threshold == 0.93
    return scan_video(path, cfg, backend or LayoutSimilarity(), lambda data, i: f"k{i}")


def _rate(result: ScanResult) -> float:
    return len(result.keyframes) / result.duration_s


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("edits")
    src = source_frames()
    out = {}
    for name, shots in (("short_film", SHORT_FILM), ("vlog", VLOG), ("montage", MONTAGE), ("still", STILL)):
        out[name] = d / f"{name}.mp4"
        write_edit(out[name], shots, src)
    return out


def test_typical_edits_land_in_the_methods_keyframe_rate(edits: dict[str, Path], tmp_path: Path) -> None:
    for name in ("short_film", "vlog"):
        result = _scan(edits[name], tmp_path)
        candidates = sum(1 for d in result.dense if d.sample_index % 4 == 0)
        assert 0.30 <= _rate(result) <= 0.45, (name, _rate(result))
        assert 0.62 <= len(result.keyframes) / candidates <= 0.86, name
        # Every shot cut starts a new keyframe: a cut is never a near-duplicate.
        assert all(c.keyframe_index is not None for c in result.cuts)
        # The colour histogram collapses on the same footage.
        assert _rate(_scan(edits[name], tmp_path, HistogramSimilarity())) < 0.3


def test_fast_cutting_raises_the_rate_and_a_held_still_keeps_only_its_ends(
        edits: dict[str, Path], tmp_path: Path) -> None:
    montage = _scan(edits["montage"], tmp_path)
    assert 0.40 <= _rate(montage) <= 0.5  # at most one keyframe per 2 s candidate (+ tail)
    still = _scan(edits["still"], tmp_path)
    assert [k.timestamp_s for k in still.keyframes] == [0.0, pytest.approx(19.96)]


def test_the_real_clip_keeps_its_changing_candidates(tmp_path: Path) -> None:
    # 5.3 s, one shot: the rabbit climbs out (0 -> 2 s) and stretches (2 -> 4 s).
    result = _scan(BIG_BUCK_BUNNY, tmp_path)
    assert [k.timestamp_s for k in result.keyframes][:2] == [0.0, 2.0]
    assert 2 <= len(result.keyframes) <= 3
    assert len(_scan(BIG_BUCK_BUNNY, tmp_path, HistogramSimilarity()).keyframes) == 2  # first + tail only
