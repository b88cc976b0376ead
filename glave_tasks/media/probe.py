"""Probe a video file and reject what the pipeline cannot use, with stable reason codes.

Reason codes (``VideoFailure.reason``), stable across releases because reports count them:

- ``not_a_video``: the bytes are not a media container we know, or the container has no video stream.
- ``corrupt``: looks like a media container but cannot be opened or decoded.
- ``truncated``: the container declares more data than the file holds (cut-off upload/copy).
- ``zero_duration``: a video stream without a single decodable frame.
- ``too_large``: a frame side over ``ingest.max_side_px``.
- ``too_long``: no longer produced; kept so older reports still read. A video longer than
  ``ingest.max_duration_s`` is truncated to it (the method's 180 s cap) and the probe row records
  ``truncated_at_s``.
- ``blank``: every keyframe candidate is blank (black leader with no content).
- ``missing_input`` / ``input_changed``: the file vanished or changed between discover and ingest.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ..config import IngestConfig
from ..errors import VideoFailure

NOT_A_VIDEO = "not_a_video"
CORRUPT = "corrupt"
TRUNCATED = "truncated"
ZERO_DURATION = "zero_duration"
TOO_LONG = "too_long"
TOO_LARGE = "too_large"
BLANK = "blank"
MISSING_INPUT = "missing_input"
INPUT_CHANGED = "input_changed"
REASONS = (NOT_A_VIDEO, CORRUPT, TRUNCATED, ZERO_DURATION, TOO_LONG, TOO_LARGE, BLANK, MISSING_INPUT, INPUT_CHANGED)

# Top-level ISO-BMFF box types that may open an MP4/MOV file.
_BMFF_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"styp"}


@dataclass(frozen=True)
class VideoProbe:
    """What the container declares, before decoding."""

    container: str
    duration_s: float  # declared; 0.0 when the container does not say
    fps: float
    width: int
    height: int
    codec: str
    has_audio: bool
    declared_frames: int  # 0 when unknown
    start_time_s: float  # presentation time of the first frame
    # Degrees counter-clockwise a player turns the picture (the display matrix, as phones write
    # it for portrait video): 0, 90, 180 or 270. width and height above are as coded.
    rotation: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown: a quarter turn swaps them."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def display_rotation(degrees: float | None) -> int:
    """A display-matrix rotation (degrees counter-clockwise, any sign) as 0, 90, 180 or 270; the
    nearest quarter turn, since players only turn video by quarter turns."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90


def sniff_container(head: bytes) -> str | None:
    """The container family the first bytes announce, or None for anything else (text, noise)."""
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST_BOXES:
        return "bmff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return "mpeg-ps"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpeg-ts"
    return None


def bmff_structure(path: str | os.PathLike[str]) -> str:
    """Walk the top-level boxes of an MP4/MOV: ``ok``, ``truncated`` (a box runs past the end of
    the file) or ``corrupt`` (a box header that is not one)."""
    size = os.path.getsize(path)
    offset = 0
    with open(path, "rb") as fh:
        while offset < size:
            fh.seek(offset)
            header = fh.read(16)
            if len(header) < 8:
                return TRUNCATED
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if not all(32 <= c < 127 for c in box_type):
                return CORRUPT
            if box_size == 1:
                if len(header) < 16:
                    return TRUNCATED
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # "extends to the end of the file"
                return "ok"
            if box_size < 8:
                return CORRUPT
            if offset + box_size > size:
                return TRUNCATED
            offset += box_size
    return "ok"


def describe(exc: Exception) -> str:
    """FFmpeg's message without the local file path (which differs per pod and cache)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def classify_open_failure(path: str | os.PathLike[str], exc: Exception) -> VideoFailure:
    """Why a file that the demuxer refused is unusable."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    family = sniff_container(head)
    if family is None:
        return VideoFailure(NOT_A_VIDEO, f"no known media container signature ({describe(exc)})")
    if family == "bmff":
        state = bmff_structure(path)
        if state == TRUNCATED:
            return VideoFailure(TRUNCATED, f"MP4/MOV box runs past the end of the file ({describe(exc)})")
    return VideoFailure(CORRUPT, f"{family} container cannot be opened: {describe(exc)}")


def probe_container(container: object, path: str | os.PathLike[str], cfg: IngestConfig) -> VideoProbe:
    """Read what an open PyAV container declares and enforce the configured limits."""
    import av  # noqa: F401 - the container is a PyAV object

    videos = list(container.streams.video)  # type: ignore[attr-defined]
    if not videos:
        # FFmpeg hides an MP4 track that holds no samples: an empty movie is empty, not "no video".
        has_video_track, movie_s = _bmff_movie(path)
        if has_video_track or (movie_s == 0.0 and not container.streams):  # type: ignore[attr-defined]
            raise VideoFailure(ZERO_DURATION, "the MP4/MOV movie holds no video frames")
    if not videos:
        raise VideoFailure(NOT_A_VIDEO, f"{container.format.name} container has no video stream")  # type: ignore[attr-defined]
    stream = videos[0]
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise VideoFailure(CORRUPT, "video stream has no frame size")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:  # type: ignore[attr-defined]
        duration = container.duration / 1_000_000  # type: ignore[attr-defined]
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
    probe = VideoProbe(
        container=container.format.name,  # type: ignore[attr-defined]
        duration_s=max(duration, 0.0), fps=fps, width=width, height=height, codec=ctx.name or "unknown",
        has_audio=bool(container.streams.audio),  # type: ignore[attr-defined]
        declared_frames=int(stream.frames or 0), start_time_s=start,
    )
    check_limits(probe.duration_s, probe.width, probe.height, cfg)
    return probe


def _bmff_movie(path: str | os.PathLike[str]) -> tuple[bool, float | None]:
    """For an MP4/MOV: whether its movie header declares a video track (``hdlr`` of type
    ``vide``), and the movie duration from ``mvhd`` in seconds (None when not found)."""
    with open(path, "rb") as fh:
        if sniff_container(fh.read(512)) != "bmff":
            return False, None
        size = os.path.getsize(path)
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            box_size, box_type = struct.unpack(">I4s", fh.read(8))
            if box_size == 1:
                box_size = struct.unpack(">Q", fh.read(8))[0]
            if box_size < 8:
                return False, None
            if box_type == b"moov":
                fh.seek(offset)
                moov = fh.read(min(box_size, 64 * 1024 * 1024))
                has_video = re.search(rb"hdlr.{8}vide", moov, re.DOTALL) is not None
                return has_video, _mvhd_duration(moov)
            offset += box_size
    return False, None


def _mvhd_duration(moov: bytes) -> float | None:
    at = moov.find(b"mvhd")
    if at < 0:
        return None
    body = moov[at + 4:]
    try:
        if body[0] == 1:  # 64-bit times
            timescale, duration = struct.unpack(">IQ", body[20:32])
        else:
            timescale, duration = struct.unpack(">II", body[12:20])
    except struct.error:
        return None
    return duration / timescale if timescale else None


def check_limits(duration_s: float, width: int, height: int, cfg: IngestConfig) -> None:
    """Reject what cannot be used. Duration is not a reason: the scan truncates at the cap."""
    if max(width, height) > cfg.max_side_px:
        raise VideoFailure(TOO_LARGE, f"{width}x{height} exceeds max_side_px {cfg.max_side_px}")


def ensure_readable(path: str | os.PathLike[str]) -> None:
    p = Path(path)
    if not p.is_file():
        raise VideoFailure(MISSING_INPUT, f"input is not a readable file: {p.name}")
    if p.stat().st_size == 0:
        raise VideoFailure(NOT_A_VIDEO, "empty file")
