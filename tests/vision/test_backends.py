"""The production vision backends on CPU with tiny random-initialised models built offline here:
ultralytics YOLO weights loaded from a path and from S3 (loopback moto), and the real SAM 2 video
predictor seeded with ground-truth boxes (a random detector finds nothing useful), exercising
batching, mask propagation, mask-IoU ID matching and RLE masks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops
from glave_tasks.config import DetectorConfig, S3Options, TrackConfig
from glave_tasks.errors import ConfigError
from glave_tasks.vision import rle
from glave_tasks.vision.frame_loading import load_frames
from glave_tasks.vision.mask_matching import match_masks
from glave_tasks.vision.types import Detection, VideoFrames
from glave_tasks.weights import resolve_weights
from tests.support import synthetic
from tests.support.committed import Committed
from tests.support.track_media import sample_jpegs

NAMES = {0: "person", 1: "car", 2: "dog", 3: "kite"}


@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_torchvision_ops()
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")  # architecture only: random weights, no download
    model.model.names = dict(NAMES)
    path = tmp_path_factory.mktemp("weights") / "tiny-yolo.pt"
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoFrames, synthetic.GroundTruth, list[int]]:
    d = tmp_path_factory.mktemp("two_shot_frames")
    gt = synthetic.two_shot_video(d / "v.mp4")
    sample = sample_jpegs(d / "v.mp4", d / "dense", limit=5)
    return load_frames("v", sample.paths, sample.timestamps, []), gt, sample.frame_indices


def test_mask_matching_keeps_ids_at_or_above_the_threshold() -> None:
    a = np.zeros((10, 10), bool)
    a[0:5, 0:5] = True
    b = np.zeros((10, 10), bool)
    b[5:10, 5:10] = True
    a_moved = np.zeros((10, 10), bool)
    a_moved[0:5, 1:5] = True  # IoU 0.8 with a
    assert match_masks({7: a, 9: b}, [b, a_moved], 0.8) == {0: 9, 1: 7}
    assert match_masks({7: a}, [a_moved], 0.81) == {}
    assert match_masks({}, [a], 0.8) == {} and match_masks({7: a}, [], 0.8) == {}


@pytest.mark.slow
def test_ultralytics_detector_runs_batched_from_a_local_path(yolo_weights: Path, frames, tmp_path: Path) -> None:
    from glave_tasks.vision.detectors.ultralytics import UltralyticsDetector

    video, _, _ = frames
    cfg = DetectorConfig(backend="ultralytics", weights=str(yolo_weights), classes=["person", "car", "zebra"],
                         confidence=0.001, image_size=160, batch_size=2)
    det = UltralyticsDetector(cfg, cache_dir=tmp_path)
    assert det.class_ids == [0, 1] and not det.open_vocabulary
    out = det.detect(video)
    assert len(out) == len(video) and det.batches == math.ceil(len(video) / 2)
    found = [d for frame in out for d in frame]
    assert all(d.label in {"person", "car"} for d in found)
    assert all(0 <= d.box[0] <= d.box[2] <= 320 and 0 <= d.box[1] <= d.box[3] <= 240 for d in found)


@pytest.mark.slow
def test_ultralytics_weights_come_from_s3_once(yolo_weights: Path, s3_endpoint: str, s3_bucket: str, tmp_path: Path,
                                               frames) -> None:
    import boto3

    from glave_tasks.vision.detectors.ultralytics import UltralyticsDetector

    boto3.client("s3", endpoint_url=s3_endpoint).upload_file(str(yolo_weights), s3_bucket, "models/tiny-yolo.pt")
    uri = f"s3://{s3_bucket}/models/tiny-yolo.pt"
    s3 = S3Options(endpoint_url=s3_endpoint)
    cached = resolve_weights(uri, tmp_path, s3)
    assert cached.read_bytes() == yolo_weights.read_bytes()
    det = UltralyticsDetector(DetectorConfig(backend="ultralytics", weights=uri, image_size=160), cache_dir=tmp_path, s3=s3)
    assert det.weights_path == cached and det.model_id == uri
    assert len(det.detect(frames[0])) == len(frames[0])
    with pytest.raises(ConfigError, match="not found"):
        resolve_weights(f"s3://{s3_bucket}/models/missing.pt", tmp_path, s3)


@pytest.mark.slow
def test_ultralytics_rejects_classes_the_weights_do_not_know(yolo_weights: Path, tmp_path: Path) -> None:
    from glave_tasks.vision.detectors.ultralytics import UltralyticsDetector

    with pytest.raises(ConfigError, match="none of the configured classes"):
        UltralyticsDetector(DetectorConfig(backend="ultralytics", weights=str(yolo_weights), classes=["zebra"]),
                            cache_dir=tmp_path)


class GroundTruthDetector:
    """Seeds the real SAM 2 predictor with ground-truth boxes on every sample."""

    def __init__(self, gt: synthetic.GroundTruth, frame_indices: list[int]) -> None:
        self.gt, self.frame_indices = gt, frame_indices

    def detect(self, video: VideoFrames) -> list[list[Detection]]:
        return [[Detection(tuple(map(float, box)), 0.9, self.gt.labels[tid]) for tid, box in sorted(self.gt.boxes[f].items())]
                for f in self.frame_indices]


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised SAM 2.1 tiny checkpoint. Random weights score every object as absent
    (masks of -1024), so the object-score head's bias is raised: weights stay random, masks
    become random but present, which is what propagation and matching need to be exercised."""
    ensure_torchvision_ops()
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu",
                                       hydra_overrides_extra=["++model.image_size=256"])
    state = model.state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 10.0
    path = tmp_path_factory.mktemp("sam2") / "sam2-tiny-random.pt"
    torch.save({"model": state}, path)
    return path


def _propagator(checkpoint: Path, tmp_path: Path, **track: object):
    from glave_tasks.vision.segmenters.sam2 import Sam2Propagator

    cfg = TrackConfig.model_validate({"segmenter": {"backend": "sam2", "checkpoint": str(checkpoint), "image_size": 256,
                                                    "detect_every": 2}, **track})
    return Sam2Propagator(cfg, cache_dir=tmp_path)


@pytest.mark.slow
def test_sam2_propagates_masks_between_detections_and_keeps_ids(sam2_checkpoint: Path, frames, tmp_path: Path) -> None:
    video, gt, indices = frames
    detections = GroundTruthDetector(gt, indices).detect(video)
    # Random masks of the same object overlap only loosely: a low threshold exercises the "match keeps
    # the ID" branch (the next test exercises the other).
    prop = _propagator(sam2_checkpoint, tmp_path, match_iou=0.05)
    objects = prop.track(video, detections)
    # Detector steps at samples 0, 2, 4; SAM 2 propagated onto 1, 2, 3, 4.
    assert prop.propagated_frames == 4
    assert [sorted(o.track_id for o in objs) for objs in objects] == [[1, 2]] * 5
    for objs in objects:
        for o in objs:
            assert o.mask.shape == (240, 320) and o.mask.any()
            np.testing.assert_array_equal(rle.decode(rle.encode(o.mask)), o.mask)
            assert o.label in {"box", "disc"}


@pytest.mark.slow
def test_sam2_gives_new_ids_when_masks_do_not_match(sam2_checkpoint: Path, frames, tmp_path: Path) -> None:
    video, gt, indices = frames
    detections = GroundTruthDetector(gt, indices).detect(video)[:3]
    short = VideoFrames("v", video.images[:3], video.paths[:3], video.shots[:3])
    # Random masks never match exactly. By default (the method's rule) an unmatched track ends at
    # the next detection sample; with one missed sample allowed it is carried there.
    objects = _propagator(sam2_checkpoint, tmp_path, match_iou=1.0).track(short, detections)
    assert [sorted(o.track_id for o in objs) for objs in objects] == [[1, 2], [1, 2], [3, 4]]
    carried = _propagator(sam2_checkpoint, tmp_path, match_iou=1.0, max_missed_detections=1).track(short, detections)
    # Sample 2: the detections start tracks 3 and 4; tracks 1 and 2 carry on with their propagated masks.
    assert [sorted(o.track_id for o in objs) for objs in carried] == [[1, 2], [1, 2], [1, 2, 3, 4]]


def test_sam2_backend_needs_a_checkpoint() -> None:
    with pytest.raises(ValueError, match="needs checkpoint"):
        TrackConfig.model_validate({"segmenter": {"backend": "sam2"}})


@pytest.mark.slow
def test_stage_runs_the_production_backends_from_s3(yolo_weights: Path, sam2_checkpoint: Path, s3_endpoint: str,
                                                      s3_bucket: str, tmp_path: Path) -> None:
    """Ingest + track with ultralytics and SAM 2, both weights read from S3: the shard commits, the
    marker records the weights URIs, and every row names the production backend."""
    import boto3

    from glave_tasks.config import load_config
    from glave_tasks.discover import discover
    from glave_tasks.runner import run_stage
    from glave_tasks.stages import build_stage
    from glave_tasks.store import ArtifactStore

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.upload_file(str(yolo_weights), s3_bucket, "m/yolo.pt")
    s3.upload_file(str(sam2_checkpoint), s3_bucket, "m/sam2.pt")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "static.mp4", seconds=2.0)
    config = load_config(environ={}, overrides={
        "store": {"root": str(tmp_path / "store"), "local_cache": str(tmp_path / "cache"), "s3": {"endpoint_url": s3_endpoint}},
        "track": {"detector": {"backend": "ultralytics", "weights": f"s3://{s3_bucket}/m/yolo.pt", "image_size": 160},
                  "segmenter": {"backend": "sam2", "checkpoint": f"s3://{s3_bucket}/m/sam2.pt", "image_size": 256}},
    })
    store = ArtifactStore(config.store.root)
    discover(store, config, str(inbox), "prod")
    run_stage(build_stage("ingest", config), store, "prod", 0, show_progress=False)
    stage = build_stage("track", config)
    outcome = run_stage(stage, store, "prod", 0, show_progress=False)
    assert outcome.status == "committed" and outcome.marker["videos_failed"] == 0
    assert outcome.marker["models"] == {"detector": f"s3://{s3_bucket}/m/yolo.pt",
                                        "segmenter": f"configs/sam2.1/sam2.1_hiera_t.yaml@s3://{s3_bucket}/m/sam2.pt"}
    marks = store.read_table(Committed(store, "prod").table("track", 0, "marks")).to_pylist()
    assert marks and {m["backend"] for m in marks} == {"ultralytics+sam2"}
