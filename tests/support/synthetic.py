"""Synthetic test videos with ground truth, written with PyAV (libx264).

A video is a list of shots; each shot has a background colour and moving objects (filled
rectangles or discs) with known boxes on every frame. Hard cuts happen exactly at shot
boundaries, so keyframes, cuts and tracks can be asserted exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np


@dataclass
class MovingObject:
    track_id: int
    label: str  # "box" or "disc"
    color: tuple[int, int, int]
    start: tuple[float, float]  # top-left at t=0 of the shot (px)
    velocity: tuple[float, float]  # px per second
    size: tuple[int, int]  # width, height

    def box_at(self, t: float, width: int, height: int) -> tuple[int, int, int, int]:
        w, h = self.size
        x = int(round(min(max(self.start[0] + self.velocity[0] * t, 0), width - w)))
        y = int(round(min(max(self.start[1] + self.velocity[1] * t, 0), height - h)))
        return x, y, x + w, y + h


@dataclass
class Shot:
    duration_s: float
    background: tuple[int, int, int]
    objects: list[MovingObject] = field(default_factory=list)
    texture_seed: int = 0  # a fixed per-shot texture so histogram similarity sees content


@dataclass
class GroundTruth:
    fps: int
    width: int
    height: int
    num_frames: int
    cut_frames: list[int]  # first frame of every shot after the first
    boxes: dict[int, dict[int, tuple[int, int, int, int]]]  # frame -> track id -> box
    labels: dict[int, str]
    blank_frames: int

    def to_json(self) -> str:
        return json.dumps({
            "fps": self.fps, "width": self.width, "height": self.height, "num_frames": self.num_frames,
            "cut_frames": self.cut_frames, "labels": self.labels, "blank_frames": self.blank_frames,
            "boxes": {str(f): {str(k): list(v) for k, v in b.items()} for f, b in self.boxes.items()},
        })


def _background(shot: Shot, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(shot.texture_seed)
    base = np.empty((height, width, 3), np.uint8)
    base[:] = shot.background
    # Soft static blocks: real-looking texture that never moves (no false motion).
    for _ in range(6):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 30))
        tint = np.clip(np.array(shot.background, int) + rng.integers(-40, 40, 3), 0, 255)
        base[y:y + 30, x:x + 40] = tint
    return base


def _draw(frame: np.ndarray, obj: MovingObject, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    if obj.label == "disc":
        yy, xx = np.mgrid[y1:y2, x1:x2]
        cy, cx, r = (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, min(x2 - x1, y2 - y1) / 2
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        frame[y1:y2, x1:x2][inside] = obj.color
    else:
        frame[y1:y2, x1:x2] = obj.color


def write_video(
    path: str | Path,
    shots: list[Shot],
    *,
    fps: int = 10,
    width: int = 320,
    height: int = 240,
    blank_s: float = 0.0,
    audio: bool = False,
) -> GroundTruth:
    """Encode the shots as H.264 (and optional silent AAC audio); return the ground truth."""
    path = Path(path)
    boxes: dict[int, dict[int, tuple[int, int, int, int]]] = {}
    labels: dict[int, str] = {}
    cut_frames: list[int] = []
    blank_frames = int(round(blank_s * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "g": str(fps * 2), "preset": "ultrafast"}
        astream = container.add_stream("aac", rate=16000) if audio else None
        frame_no = 0

        def emit(img: np.ndarray) -> None:
            nonlocal frame_no
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
            frame_no += 1

        for _ in range(blank_frames):
            emit(np.zeros((height, width, 3), np.uint8))
        for i, shot in enumerate(shots):
            if i > 0:
                cut_frames.append(frame_no)
            bg = _background(shot, width, height)
            for k in range(int(round(shot.duration_s * fps))):
                t = k / fps
                img = bg.copy()
                boxes[frame_no] = {}
                for obj in shot.objects:
                    box = obj.box_at(t, width, height)
                    _draw(img, obj, box)
                    boxes[frame_no][obj.track_id] = box
                    labels[obj.track_id] = obj.label
                emit(img)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            samples = int(16000 * frame_no / fps)
            silence = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
            silence.sample_rate = 16000
            for packet in astream.encode(silence):
                container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return GroundTruth(fps, width, height, frame_no, cut_frames, boxes, labels, blank_frames)


def two_shot_video(path: str | Path, *, fps: int = 10, blank_s: float = 0.0, audio: bool = False) -> GroundTruth:
    """The standard fixture: 6 s of a red box moving right and a blue disc moving down, a hard
    cut at 6 s, then 4 s on a different background with a green box moving left."""
    shots = [
        Shot(6.0, (200, 200, 190), [
            MovingObject(1, "box", (220, 30, 30), (20, 60), (30, 0), (50, 40)),
            MovingObject(2, "disc", (30, 60, 220), (200, 10), (0, 20), (44, 44)),
        ], texture_seed=1),
        Shot(4.0, (40, 90, 50), [
            MovingObject(3, "box", (60, 230, 60), (250, 150), (-35, 0), (48, 48)),
        ], texture_seed=2),
    ]
    return write_video(path, shots, fps=fps, blank_s=blank_s, audio=audio)


def static_video(path: str | Path, *, seconds: float = 4.0, fps: int = 10) -> GroundTruth:
    """No objects, no motion, no cuts."""
    return write_video(path, [Shot(seconds, (120, 120, 120), texture_seed=3)], fps=fps)


def corrupt_file(path: str | Path) -> Path:
    """Bytes that claim to be an .mp4 but are not a video."""
    path = Path(path)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    return path


def truncated_copy(src: str | Path, dst: str | Path, keep: float = 0.4) -> Path:
    """The first ``keep`` share of a real video's bytes."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def text_file_named_video(path: str | Path) -> Path:
    Path(path).write_text("this is not a video\n" * 20)
    return Path(path)


def empty_movie(path: str | Path) -> Path:
    """An MP4 whose movie holds no frames at all (a recorder stopped before the first frame)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    container.start_encoding()
    container.close()
    return Path(path)


def audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """A valid MP4 with an AAC track and no video track."""
    with av.open(str(path), "w") as container:
        astream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, int(16000 * seconds)), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in astream.encode(frame):
            container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return Path(path)


def faststart_video(path: str | Path, *, frames: int = 100, fps: int = 10) -> Path:
    """Noise frames in an MP4 whose index (moov) comes first, as streaming uploads are muxed:
    a truncated copy still opens, and only decoding shows that frames are missing."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            img = np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def long_video(path: str | Path, *, seconds: float = 60.0, fps: int = 25, width: int = 640, height: int = 360) -> GroundTruth:
    """A longer multi-shot video for throughput and interruption tests: a shot every 10 s."""
    shots = [
        Shot(min(10.0, seconds - 10.0 * i), (40 + 35 * (i % 6), 200 - 25 * (i % 7), 90 + 20 * (i % 5)), [
            MovingObject(1, "box", (220, 30, 30), (20, 60), (30, 5), (80, 60)),
            MovingObject(2, "disc", (30, 60, 220), (300, 10), (-10, 20), (70, 70)),
        ], texture_seed=10 + i)
        for i in range(int(np.ceil(seconds / 10.0)))
    ]
    return write_video(path, shots, fps=fps, width=width, height=height)
