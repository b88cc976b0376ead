"""The single decode pass of ingest: every frame is decoded once and streamed through the cut
detector; frames on the dense grid are resized, JPEG-encoded and handed to ``put_image``; dense
samples on the candidate grid go to the keyframe selector. Nothing holds the whole video.

A video longer than ``max_duration_s`` is truncated there (the method's cap), not rejected: frames
from the cap on are not decoded, and the result says where it was cut. The last frame that
shows content becomes a keyframe by the tail rule (see ``keyframes``); a trailing fade to black is
not a picture worth a caption, so the tail is the last non-blank frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from ..config import IngestConfig
from ..errors import VideoFailure
from . import probe as P
from .cuts import CutDetector, MappedCut, map_cuts
from .frame_sampling import SampleGrid, analysis_size, encode_jpeg, fit_within, is_blank
from .keyframes import Candidate, Keyframe, KeyframeSelector
from .similarity import SimilarityBackend

# put_image(jpeg_bytes, sample_index) -> key of the stored image
PutImage = Callable[[bytes, int], str]

# The decoder's own frame threads pay from about this frame size on. At 640x360 they cost more
# than they give (decode beside the detector: 2.1 s threaded vs 1.5 s single for 85 s of video);
# at 1280x720 decoding dominates and they save 1.7x.
CODEC_THREADS_MIN_PIXELS = 640 * 480


@dataclass
class DenseSample:
    sample_index: int
    frame_index: int
    timestamp_s: float
    image_key: str
    keyframe_index: int | None = None


@dataclass
class ScanResult:
    probe: P.VideoProbe
    frames_decoded: int
    duration_s: float  # measured: last frame time + one frame
    first_content_s: float
    dense: list[DenseSample]
    keyframes: list[Keyframe]
    cuts: list[MappedCut]
    shot_of_keyframe: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    truncated_at_s: float | None = None  # set when the video ran past max_duration_s and was cut there


def candidate_stride(cfg: IngestConfig) -> int:
    """Keyframe candidates are every n-th dense sample, so every keyframe has a dense sample
    (the tracker's masks exist on it). The candidate interval is rounded to a multiple of the
    dense interval."""
    return max(1, int(round(cfg.candidate_interval_s / cfg.dense_interval_s)))


def scan_video(
    path: str | os.PathLike[str],
    cfg: IngestConfig,
    backend: SimilarityBackend,
    put_image: PutImage,
    on_progress: Callable[[float], None] | None = None,
    decode_threads: bool = True,
) -> ScanResult:
    """Run the ingest pass over one local video file. ``on_progress`` gets the seconds of video
    decoded so far, about once per second of video.

    Decoding runs on a thread of its own, ahead of this one (PyAV releases the GIL while it
    decodes), so the cut detector and the samples' work overlap it. ``decode_threads`` lets the
    decoder add its own frame threads for large frames, where decoding is most of the cost; pass
    False in a worker of a pool that already runs one process per core."""
    P.ensure_readable(path)
    started = time.perf_counter()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        if isinstance(exc, MemoryError):
            raise  # FFmpeg's ENOMEM: the machine's fault, not the file's
        raise P.classify_open_failure(path, exc) from None
    # A failing video stops its writer too: no sample of it is written after the scan ends.
    with container, DenseWriter(put_image, cfg.jpeg_quality) as writer:
        probe = P.probe_container(container, path, cfg)
        stream = container.streams.video[0]
        if decode_threads and probe.width * probe.height >= CODEC_THREADS_MIN_PIXELS:
            stream.thread_type = "AUTO"  # frame + slice threads
        fps = probe.fps if probe.fps > 0 else 25.0
        out_w, out_h = fit_within(probe.width, probe.height, cfg.frame_max_side)
        ana_w, ana_h = analysis_size(probe.width, probe.height, cfg.cut_analysis_width)
        # Every frame is shrunk for the cut detector; only dense samples are converted at the
        # output size (one reformatter each: swscale contexts are built once).
        to_analysis, to_output = VideoReformatter(), VideoReformatter()
        # A portrait phone video is stored landscape with a display rotation: stored pictures are
        # turned upright as a player shows them (the cut detector does not care which way is up).
        turn: int | None = None  # from the first frame's display matrix
        shown_w, shown_h = out_w, out_h

        def output(frame: av.VideoFrame) -> Any:
            return _upright(_output_bgr(to_output, frame, out_w, out_h), turn or 0)
        dense_grid = SampleGrid(cfg.dense_interval_s, fps)
        stride = candidate_stride(cfg)
        cuts = CutDetector(fps, cfg.cut_threshold, cfg.min_scene_len_frames)
        selector = KeyframeSelector(backend, cfg.similarity_threshold)
        dense: list[DenseSample] = []
        first_content: float | None = None
        first_content_frame = 0
        content_candidate_seen = False
        frame_index = -1
        last_t = 0.0
        truncated_at: float | None = None
        # The tail candidate: the last frame that shows content, kept by reference only (one frame),
        # and the last dense sample that shows content (with its output-size picture).
        tail: tuple[Any, int, float] | None = None
        content_sample: tuple[DenseSample, Any] | None = None
        try:
            # Closed on the way out, early or not: the decoder thread ends before the container.
            with contextlib.closing(decoded_frames(container, stream)) as decoded:
                for frame in decoded:
                    if turn is None:
                        turn = P.display_rotation(frame.rotation)
                        shown_w, shown_h = (out_h, out_w) if turn in (90, 270) else (out_w, out_h)
                    if _frame_time(frame, probe.start_time_s, frame_index + 1, fps) >= cfg.max_duration_s:
                        truncated_at = cfg.max_duration_s  # the method's cap: keep what came before
                        break
                    frame_index += 1
                    t = _frame_time(frame, probe.start_time_s, frame_index, fps)
                    if on_progress is not None and int(t) != int(last_t):
                        on_progress(t)
                    last_t = t
                    small = analysis_bgr(frame, to_analysis, ana_w, ana_h)
                    cuts.process(frame_index, small)
                    blank = is_blank(small, cfg.blank_luma_threshold, cfg.blank_std_threshold)
                    if first_content is None and not blank:
                        first_content = t
                        first_content_frame = frame_index
                    if not blank:
                        tail = (frame, frame_index, t)
                    if not dense_grid.due(t):
                        continue
                    sample_index = len(dense)
                    bgr = output(frame)
                    writer.put(bgr, sample_index)
                    dense.append(DenseSample(sample_index, frame_index, round(t, 6), ""))
                    if not blank:
                        content_sample = (dense[-1], bgr)
                    if sample_index % stride:
                        continue
                    # Leading blank candidates are skipped: the first keyframe shows content.
                    if not content_candidate_seen:
                        if blank:
                            continue
                        content_candidate_seen = True
                    selector.add(Candidate(sample_index, frame_index, round(t, 6), "", shown_w, shown_h,
                                           cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        except av.FFmpegError as exc:
            if isinstance(exc, MemoryError):
                raise
            if frame_index < 0:
                raise VideoFailure(P.CORRUPT, f"no frame could be decoded: {P.describe(exc)}") from None
            raise VideoFailure(P.TRUNCATED if _looks_truncated(path) else P.CORRUPT,
                               f"decoding failed after frame {frame_index}: {P.describe(exc)}") from None
        frames = frame_index + 1
        if on_progress is not None:
            on_progress(last_t)
        if frames == 0:
            raise VideoFailure(P.ZERO_DURATION, "the video stream has no decodable frame")
        measured = last_t + 1.0 / fps
        # A stream that ends well before what its container declares was cut off (a video we
        # truncated ourselves ends early on purpose).
        if truncated_at is None and probe.declared_frames > 0 and frames < 0.9 * probe.declared_frames - 1:
            raise VideoFailure(P.TRUNCATED, f"decoded {frames} of {probe.declared_frames} declared frames")
        if truncated_at is None and probe.duration_s > 0 and measured < 0.9 * probe.duration_s - 1.0 / fps:
            raise VideoFailure(P.TRUNCATED, f"stream ends at {measured:.2f} s of {probe.duration_s:.2f} s declared")
        if first_content is None or not content_candidate_seen:
            raise VideoFailure(P.BLANK, "every sampled frame is blank")
        selector.finish()
        if tail is not None and content_sample is not None:
            tail_frame, tail_index, tail_t = tail
            sample, tail_bgr = content_sample
            if tail_index > dense[-1].frame_index:
                # The last content frame comes after every dense sample: it becomes one more sample
                # (samples stay in time order). When blank samples follow it (a fade to black),
                # the last content sample stands in for it, at most one dense interval earlier.
                sample, tail_bgr = DenseSample(len(dense), tail_index, round(tail_t, 6), ""), None
            if selector.wants_tail(sample.timestamp_s, cfg.candidate_interval_s):
                if tail_bgr is None:
                    tail_bgr = output(tail_frame)
                    writer.put(tail_bgr, sample.sample_index)
                    dense.append(sample)
                selector.add_tail(Candidate(sample.sample_index, sample.frame_index, sample.timestamp_s,
                                            "", shown_w, shown_h, cv2.cvtColor(tail_bgr, cv2.COLOR_BGR2RGB)))
        tail = content_sample = None  # drop the frame references before the container closes
        keys = writer.finish()
    for d in dense:
        d.image_key = keys[d.sample_index]
    keyframes = selector.keyframes
    for k in keyframes:
        k.image_key = keys[k.sample_index]
    # The jump from a blank leader into the first picture is not a shot cut.
    cut_frames = [c for c in cuts.finish() if c > first_content_frame]
    mapped, shots = map_cuts(cut_frames, [k.frame_index for k in keyframes])
    by_sample = {k.sample_index: k.keyframe_index for k in keyframes}
    for d in dense:
        d.keyframe_index = by_sample.get(d.sample_index)
    return ScanResult(
        probe=dataclasses.replace(probe, rotation=turn or 0), frames_decoded=frames, duration_s=round(measured, 6), first_content_s=round(first_content, 6),
        dense=dense, keyframes=keyframes, cuts=mapped, shot_of_keyframe=shots,
        timings={"scan_s": time.perf_counter() - started}, truncated_at_s=truncated_at,
    )


def _output_bgr(reformatter: VideoReformatter, frame: av.VideoFrame, width: int, height: int) -> Any:
    """The frame as a BGR array at the output size (area-averaged when it shrinks)."""
    return reformatter.reformat(frame, width=width, height=height, format="bgr24", interpolation="AREA").to_ndarray()


# Display rotation (degrees counter-clockwise) -> the OpenCV turn that shows the picture upright.
_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def _upright(bgr: Any, rotation: int) -> Any:
    return cv2.rotate(bgr, _TURNS[rotation]) if rotation in _TURNS else bgr


def decoded_frames(container: av.container.InputContainer, stream: av.VideoStream,
                   depth: int = 8) -> Generator[av.VideoFrame, None, None]:
    """The stream's frames, decoded on a background thread at most ``depth`` frames ahead. A
    decoding error is raised here after the frames before it. Leaving early (a break, an error
    in the caller) stops the decoder before the container can close under it."""
    frames: queue.Queue[av.VideoFrame | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: av.VideoFrame | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for frame in container.decode(stream):
                if not offer(frame):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
            return
        offer(None)

    worker = threading.Thread(target=decode, name="decoder", daemon=True)
    worker.start()
    try:
        while (item := frames.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def analysis_bgr(frame: av.VideoFrame, reformatter: VideoReformatter, width: int, height: int) -> np.ndarray:
    """The frame shrunk to the cut detector's size, as BGR. For 8-bit 4:2:0 video (nearly all of
    it) the decoder's planes are point-sampled in place and converted at the small size (OpenCV's
    BT.601 video-range I420 conversion, swscale's default for such video): a swscale shrink reads
    and filters the whole frame, several times the cost of the detector's own work. Other formats
    go through swscale. ``width`` and ``height`` are even."""
    if frame.format.name != "yuv420p":
        return reformatter.reformat(frame, width=width, height=height, format="bgr24",
                                    interpolation="FAST_BILINEAR").to_ndarray()
    y, u, v = (_plane(frame, i) for i in range(3))
    i420 = np.empty((height * 3 // 2, width), np.uint8)
    cw, ch = width // 2, height // 2
    cv2.resize(y, (width, height), dst=i420[:height], interpolation=cv2.INTER_NEAREST)
    chroma = i420[height:].reshape(2, ch, cw)  # U then V, each a quarter of the luma plane
    cv2.resize(u, (cw, ch), dst=chroma[0], interpolation=cv2.INTER_NEAREST)
    cv2.resize(v, (cw, ch), dst=chroma[1], interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A view of one plane of the decoded frame (no copy; rows padded to the line size)."""
    plane = frame.planes[index]
    rows: np.ndarray = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :plane.width]


class DenseWriter:
    """Dense samples are JPEG-encoded and stored on one background thread while decoding goes on
    (OpenCV's encoder and the store's writes release the GIL; a remote store's round trips
    overlap the decode). At most ``depth`` samples wait, so memory stays bounded and a failing
    write stops the scan within ``depth`` samples, not at the end. Writes happen in submission order."""

    def __init__(self, put_image: PutImage, quality: int, depth: int = 8) -> None:
        self._put, self._quality, self._depth = put_image, quality, depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dense-writer")
        self._pending: deque[tuple[int, Future[str]]] = deque()
        self._keys: dict[int, str] = {}

    def put(self, bgr: np.ndarray, sample_index: int) -> None:
        self._pending.append((sample_index, self._pool.submit(self._write, bgr, sample_index)))
        while len(self._pending) > self._depth:
            self._collect()

    def finish(self) -> dict[int, str]:
        """Wait for every write; the stored key of each sample. Raises the first write's error."""
        try:
            while self._pending:
                self._collect()
        finally:
            self.abandon()
        return self._keys

    def abandon(self) -> None:
        """Stop: queued writes are dropped, a running one is waited for (no write outlives the scan)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    def __enter__(self) -> DenseWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abandon()

    def _collect(self) -> None:
        index, future = self._pending.popleft()
        self._keys[index] = future.result()

    def _write(self, bgr: np.ndarray, sample_index: int) -> str:
        return self._put(encode_jpeg(bgr, self._quality), sample_index)


def _frame_time(frame: av.VideoFrame, start_s: float, index: int, fps: float) -> float:
    t: float | None = frame.time  # PyAV types it float; frames without a timestamp do exist
    if t is None:
        return index / fps
    return max(0.0, float(t) - start_s)


def _looks_truncated(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512)
    return P.sniff_container(head) == "bmff" and P.bmff_structure(path) == P.TRUNCATED
