"""Production detector: an ultralytics model from configured weights, run in batches.

Open-vocabulary weights (YOLO-World, YOLOE: models with ``set_classes``) are prompted with the
configured class list; closed-set YOLO weights keep only the configured classes that exist in
the model's ``names`` (a config naming none of them is an error, not an empty result). Weights
come from a local path or an ``s3://`` URI through the pod's weights cache, never from a hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...backends import Backend
from ...config import DetectorConfig, S3Options
from ...contract import Resources
from ...errors import ConfigError
from ...weights import resolve_weights
from ..types import Detection, VideoFrames


class UltralyticsDetector(Backend):
    backend = "ultralytics"
    warm_imports = ("ultralytics.models",)  # what `from ultralytics import YOLO` loads

    @classmethod
    def model_ids(cls, config: DetectorConfig) -> dict[str, str]:
        return {"detector": str(config.weights)}

    @classmethod
    def resources(cls, config: DetectorConfig) -> Resources:
        return Resources(cpu="4", memory="16Gi", gpus=1, ephemeral_storage="40Gi")

    def __init__(self, config: DetectorConfig, *, cache_dir: str | Path = "var/cache", s3: S3Options | None = None,
                 **_: Any) -> None:
        if not config.weights:
            raise ConfigError("track.detector.weights is required for the ultralytics backend")
        from ...compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()  # before ultralytics imports torchvision
        from ultralytics import YOLO

        self.config = config
        self.model_id = config.weights
        self.weights_path = resolve_weights(config.weights, cache_dir, s3)
        self.model = YOLO(str(self.weights_path))
        # YOLO() turns *-world / yoloe weights into YOLOWorld / YOLOE, whose nets take text prompts.
        self.open_vocabulary = hasattr(self.model.model, "set_classes")
        if self.open_vocabulary:
            self.model.set_classes(list(config.classes))
            self.class_ids: list[int] | None = None
        else:
            names: dict[int, str] = self.model.names
            wanted = set(config.classes)
            self.class_ids = sorted(i for i, n in names.items() if n in wanted)
            if not self.class_ids:
                raise ConfigError(
                    f"detector weights {config.weights} know none of the configured classes {sorted(wanted)} "
                    f"(model classes: {sorted(set(names.values()))[:20]}...)"
                )
        self.batches = 0  # predict calls made, for metrics and tests

    def detect(self, video: VideoFrames) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        size = self.config.batch_size
        for start in range(0, len(video), size):
            # ultralytics takes numpy images as BGR.
            batch = [np.ascontiguousarray(im[:, :, ::-1]) for im in video.images[start:start + size]]
            results = self.model.predict(
                batch, imgsz=self.config.image_size, conf=self.config.confidence, classes=self.class_ids,
                device=self.config.device, verbose=False, batch=len(batch),
            )
            self.batches += 1
            for res in results:
                boxes = res.boxes.cpu().numpy()
                names = res.names
                out.append([
                    Detection(tuple(float(c) for c in xyxy), float(conf), str(names[int(cls)]))
                    for xyxy, conf, cls in zip(boxes.xyxy, boxes.conf, boxes.cls)
                ])
        return out
