"""Edited footage made from the one real clip we may ship (Big Buck Bunny, 5.3 s, one shot).

Real YouTube videos cannot be fetched here, so keyframe rates are measured on videos edited the
way uploads are: the clip's frames cut into shots and re-framed the way an editor or a second
camera would. Every edit is a plain, deterministic operation on decoded frames (PyAV decode,
NumPy/OpenCV crop, mirror and resize, PyAV libx264 encode); nothing is synthetic drawing.

Shot operations (``Shot``):
- ``play``: source frames ``start..end`` in order;
- ``reverse``: the same frames backwards;
- ``slow``: each frame shown ``slow`` times (slow motion);
- ``hold``: one frame held for the whole shot (a freeze frame or a still insert);
- ``zoom``: a crop of ``1/zoom`` of the frame around (``cx``, ``cy``), scaled back up (a tighter
  camera angle on the same action); ``mirror`` flips left-right (a reverse angle);
- ``pan``: the crop window slides from (``cx``, ``cy``) to (``cx2``, ``cy2``) over the shot.
Shots are separated by hard cuts, as in an edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from . import BIG_BUCK_BUNNY

FPS = 25
SIZE = (480, 270)


@dataclass(frozen=True)
class Shot:
    start: int  # first source frame (0..131)
    seconds: float  # length of the shot in the edit
    zoom: float = 1.0
    cx: float = 0.5
    cy: float = 0.5
    cx2: float | None = None  # pan target (None: no pan)
    cy2: float | None = None
    mirror: bool = False
    reverse: bool = False
    slow: int = 1
    hold: bool = False


def source_frames(size: tuple[int, int] = (960, 540)) -> list[np.ndarray]:
    """Every frame of the Big Buck Bunny clip as RGB at ``size`` (132 frames)."""
    with av.open(str(BIG_BUCK_BUNNY)) as container:
        return [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
                for f in container.decode(video=0)]


def _crop(img: np.ndarray, zoom: float, cx: float, cy: float) -> np.ndarray:
    h, w = img.shape[:2]
    cw, ch = int(round(w / zoom)), int(round(h / zoom))
    x0 = int(round(min(max(cx * w - cw / 2, 0), w - cw)))
    y0 = int(round(min(max(cy * h - ch / 2, 0), h - ch)))
    return cv2.resize(img[y0:y0 + ch, x0:x0 + cw], SIZE, interpolation=cv2.INTER_AREA)


def shot_frames(src: list[np.ndarray], shot: Shot) -> list[np.ndarray]:
    n = max(1, int(round(shot.seconds * FPS)))
    if shot.hold:
        order = [shot.start] * n
    else:
        span = list(range(shot.start, len(src)))
        if shot.reverse:
            span = span[::-1]
        order = [span[min(i // shot.slow, len(span) - 1)] for i in range(n)]
    out = []
    for i, idx in enumerate(order):
        frac = i / max(n - 1, 1)
        cx = shot.cx if shot.cx2 is None else shot.cx + frac * (shot.cx2 - shot.cx)
        cy = shot.cy if shot.cy2 is None else shot.cy + frac * (shot.cy2 - shot.cy)
        img = _crop(src[idx], shot.zoom, cx, cy)
        out.append(img[:, ::-1].copy() if shot.mirror else img)
    return out


def write_edit(path: Path, shots: list[Shot], src: list[np.ndarray] | None = None) -> float:
    """Encode the edit as H.264 MP4; returns its length in seconds."""
    src = src if src is not None else source_frames()
    frames = 0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for shot in shots:
            for img in shot_frames(src, shot):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = frames
                frames += 1
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return frames / FPS


# A fast-cut montage (trailer, music video, highlights): shots of 2-5 s, every kind of re-framing.
MONTAGE = [
    Shot(0, 5.0), Shot(40, 3.0, zoom=1.8, cx=0.55, cy=0.45), Shot(60, 2.5, mirror=True),
    Shot(10, 4.0, zoom=1.4, cx=0.3, cy=0.6), Shot(80, 3.0, reverse=True), Shot(90, 2.0, zoom=2.2, cx=0.6, cy=0.35),
    Shot(0, 4.5, slow=2, zoom=1.3, cx=0.4, cy=0.5), Shot(70, 1.5, hold=True),
    Shot(30, 3.5, mirror=True, zoom=1.5, cx=0.5, cy=0.5),
    Shot(100, 2.5, zoom=1.2, cx=0.5, cy=0.5, cx2=0.3, cy2=0.5), Shot(50, 3.0, zoom=2.0, cx=0.7, cy=0.6),
    Shot(20, 4.0, reverse=True, mirror=True), Shot(0, 2.0, zoom=1.6, cx=0.2, cy=0.7), Shot(65, 3.0),
    Shot(110, 2.0, zoom=1.7, cx=0.45, cy=0.3), Shot(45, 4.0, slow=2, mirror=True),
    Shot(15, 3.0, zoom=1.3, cx=0.6, cy=0.5, cx2=0.4, cy2=0.5), Shot(85, 2.5, zoom=2.5, cx=0.5, cy=0.4),
    Shot(0, 3.0, mirror=True, zoom=1.2), Shot(120, 2.0, hold=True), Shot(35, 3.5),
]

# A vlog-like edit: longer takes, slow motion, freeze frames and still inserts between actions.
VLOG = [
    Shot(0, 5.2), Shot(60, 4.0, hold=True), Shot(20, 6.0, slow=2, zoom=1.3, cx=0.45, cy=0.5),
    Shot(100, 3.0, zoom=1.6, cx=0.5, cy=0.4), Shot(40, 5.0, slow=3, mirror=True),
    Shot(125, 3.0, hold=True, zoom=1.2), Shot(0, 5.0, zoom=1.4, cx=0.3, cy=0.55, cx2=0.6, cy2=0.45),
    Shot(70, 4.0, reverse=True), Shot(30, 6.0, slow=2, zoom=1.8, cx=0.55, cy=0.45),
    Shot(90, 3.0, mirror=True), Shot(10, 4.0, hold=True, zoom=1.5, cx=0.4, cy=0.5),
    Shot(50, 5.0, slow=2), Shot(110, 3.0, zoom=2.0, cx=0.5, cy=0.35), Shot(0, 4.0, reverse=True, mirror=True),
    Shot(80, 5.0, slow=3, zoom=1.2),
]

# A short-film edit: takes of 4-7 s with camera moves (pans, punch-ins), a reverse angle, one insert.
SHORT_FILM = [
    Shot(0, 5.0, zoom=1.2, cx=0.4, cy=0.5, cx2=0.6, cy2=0.5), Shot(40, 6.0, slow=2, zoom=1.5, cx=0.5, cy=0.45),
    Shot(90, 4.0, mirror=True, zoom=1.3), Shot(10, 7.0, slow=2), Shot(120, 4.0, hold=True, zoom=1.8, cx=0.5, cy=0.4),
    Shot(60, 5.0, zoom=1.4, cx=0.6, cy=0.5, cx2=0.4, cy2=0.6), Shot(25, 6.0, slow=2, mirror=True, zoom=1.2),
    Shot(0, 5.0, reverse=True, zoom=2.0, cx=0.35, cy=0.6), Shot(75, 6.0, slow=2, zoom=1.1),
    Shot(50, 4.0, zoom=1.6, cx=0.65, cy=0.4), Shot(100, 5.0, slow=3, mirror=True),
    Shot(5, 6.0, slow=2, zoom=1.3, cx=0.5, cy=0.5, cx2=0.5, cy2=0.35),
]

# Near-duplicates only: one still picture held, as in a slide or a paused frame.
STILL = [Shot(60, 20.0, hold=True)]
