"""The SAM 2 segmenter on CPU with a tiny random SAM 2.1 (image size 256): the image encoder runs
once per dense frame, tracks live and end by the lifecycle rules and the cap, and on real
footage (Big Buck Bunny, classical detector) the tracked objects per sample follow the
detections instead of piling up inside the shot.

Random weights give random but present masks, so these tests pin down counts and IDs, not mask
quality. With ``match_iou=1.0`` random masks never match a detection, which makes every track's
life exactly predictable from the lifecycle rules.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from glave_tasks.config import TrackConfig
from glave_tasks.vision.frame_loading import load_frames
from glave_tasks.vision.types import Detection, VideoFrames
from tests.support import BIG_BUCK_BUNNY, synthetic
from tests.support.tiny_sam2 import write_tiny_sam2
from tests.support.track_media import sample_jpegs

pytestmark = pytest.mark.slow  # real SAM 2 model runs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sam2(tmp_path_factory.mktemp("sam2") / "sam2-tiny-random.pt")


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoFrames, list[list[Detection]]]:
    """16 dense samples of the synthetic two-shot video (cut at 6 s: samples 0-11, then 12-15)
    with ground-truth detections: the box scores 0.9, the disc 0.6."""
    folder = tmp_path_factory.mktemp("two_shot")
    gt = synthetic.two_shot_video(folder / "v.mp4")
    sample = sample_jpegs(folder / "v.mp4", folder / "dense", limit=16)
    video = load_frames("v", sample.paths, sample.timestamps, [6.0])
    detections = [[Detection(tuple(map(float, box)), 0.9 if gt.labels[tid] == "box" else 0.6, gt.labels[tid])
                   for tid, box in sorted(gt.boxes[f].items())] for f in sample.frame_indices]
    return video, detections


def _propagator(checkpoint: Path, **track: object):
    from glave_tasks.vision.segmenters.sam2 import Sam2Propagator

    segmenter = {"backend": "sam2", "checkpoint": str(checkpoint), "image_size": 256, **dict(track.pop("segmenter", {}))}
    return Sam2Propagator(TrackConfig.model_validate({"segmenter": segmenter, **track}), cache_dir="unused")


def test_image_encoder_runs_once_per_dense_frame(checkpoint: Path, two_shots) -> None:
    video, detections = two_shots
    assert video.shots == [0] * 12 + [1] * 4
    prop = _propagator(checkpoint, segmenter={"detect_every": 2, "encode_batch": 3}, match_iou=0.05)
    encoder = prop.model.image_encoder
    seen: list[str] = []
    original = encoder.forward

    def counting(x):  # noqa: ANN001, ANN202
        seen.extend(hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in x)
        return original(x)

    encoder.forward = counting
    objects = prop.track(video, detections)
    # Every frame encoded exactly once, in batches of 3 within a shot: 12 -> 4 calls, 4 -> 2 calls.
    assert len(seen) == len(video) == len(set(seen))
    assert prop.memory.encoder_calls == 6 and prop.memory.encoded_frames == 16
    # Detection masks and propagation used those features: objects on every sample.
    assert all(objects[f] for f in range(len(video)))
    # Propagation onto every sample after the first of each shot.
    assert prop.propagated_frames == 11 + 3


def _expected(detections: list[list[Detection]], shots: list[int], every: int, max_missed: int,
              cap: int) -> list[list[int]]:
    """Track IDs per sample when no detection ever matches a live track (match_iou 1.0)."""
    out: list[list[int]] = []
    live: dict[int, tuple[float, int]] = {}  # id -> (score, missed)
    next_id = 1
    shot_start = 0
    for f, dets in enumerate(detections):
        if f and shots[f] != shots[f - 1]:
            live, shot_start = {}, f
        if (f - shot_start) % every == 0:
            live = {t: (s, m + 1) for t, (s, m) in live.items() if m + 1 <= max_missed}
            for det in sorted(dets, key=lambda d: -d.score)[:cap]:
                live[next_id] = (det.score, 0)
                next_id += 1
            keep = sorted(sorted(live), key=lambda t: -live[t][0])[:cap]
            live = {t: live[t] for t in keep}
        out.append(sorted(live))
    return out


@pytest.mark.parametrize(("max_missed", "cap"), [(0, 32), (1, 32), (2, 3), (0, 1)])
def test_tracks_end_after_missed_detection_samples_and_never_exceed_the_cap(checkpoint: Path, two_shots,
                                                                            max_missed: int, cap: int) -> None:
    video, detections = two_shots
    # Shot 1: the detector misses everything on sample 4 and the disc on sample 6.
    dets = [list(d) for d in detections]
    dets[4] = []
    dets[6] = [d for d in dets[6] if d.label == "box"]
    prop = _propagator(checkpoint, segmenter={"detect_every": 2}, match_iou=1.0,
                       max_missed_detections=max_missed, max_objects_per_frame=cap)
    objects = prop.track(video, dets)
    ids = [sorted(o.track_id for o in objs) for objs in objects]
    assert ids == _expected(dets, video.shots, 2, max_missed, cap)
    last_detection_count = 0
    for f, objs in enumerate(objects):
        assert len(objs) <= cap
        if f % 2 == 0 or video.shots[f] != video.shots[f - 1]:
            allowed = len(dets[f]) + (last_detection_count if max_missed else 0)
            last_detection_count = len(objs)
        assert len(objs) <= min(allowed, cap)
    if max_missed == 0:  # the method's rule: nobody is present on sample 4, where nothing was detected
        assert ids[4] == [] and ids[5] == []


def test_real_footage_objects_follow_detections_and_do_not_pile_up(checkpoint: Path, tmp_path: Path) -> None:
    """Big Buck Bunny (a real 5.3 s clip; no busy street clip is available offline), classical
    detector, tiny SAM 2 at the default lifecycle, detector on every sample and every second one."""
    from glave_tasks.vision.detectors.classical import ClassicalDetector

    sample = sample_jpegs(BIG_BUCK_BUNNY, tmp_path / "dense", max_side=320)
    video = load_frames("bbb", sample.paths, sample.timestamps, [])
    detections = ClassicalDetector(TrackConfig().detector).detect(video)
    counts = [len(d) for d in detections]
    assert sum(counts) >= len(video)  # the clip has moving content for the detector to find
    for every in (1, 2):
        prop = _propagator(checkpoint, segmenter={"detect_every": every})
        objects = prop.track(video, detections)
        tracked = [len(o) for o in objects]
        for f in range(len(video)):
            anchor = f - f % every  # the detection sample this sample's tracks come from
            if f == anchor:
                # Every detection is present (matched or new), nothing else is carried.
                assert tracked[f] == counts[f], (every, f, tracked, counts)
            else:
                assert tracked[f] <= counts[anchor], (every, f, tracked, counts)
        assert max(tracked) <= max(counts)
        ids = {o.track_id for objs in objects for o in objs}
        assert len(ids) <= sum(counts[::every])
