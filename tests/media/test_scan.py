"""The decode pass's own machinery: the cut detector's small frames and the dense-sample writer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from glave_tasks.config import load_config
from glave_tasks.media.frame_sampling import analysis_size
from glave_tasks.media.scan import DenseWriter, analysis_bgr, decoded_frames, scan_video
from glave_tasks.media.similarity.histogram import HistogramSimilarity
from tests.support import BIG_BUCK_BUNNY, synthetic


def real_frames(count: int = 40) -> list[av.VideoFrame]:
    with av.open(str(BIG_BUCK_BUNNY)) as container:
        return [f for _, f in zip(range(count), container.decode(video=0))]


def test_analysis_size_is_pyscenedetects_downscale_with_even_sides() -> None:
    assert analysis_size(640, 360) == (160, 90)
    assert analysis_size(1280, 720) == (160, 90)
    assert analysis_size(360, 640) == (90, 160)  # the longer side decides, as in PySceneDetect
    assert analysis_size(120, 68) == (120, 68)  # never scaled up
    assert analysis_size(1920, 1080, 256) == (256, 144)
    assert all(side % 2 == 0 for side in analysis_size(854, 480))


def test_the_small_frame_from_the_decoders_planes_shows_what_swscale_shows() -> None:
    """Point-sampled planes converted at the small size: same colours (BT.601 video range) as
    swscale's own conversion of the whole frame, shrunk; only sampling detail differs."""
    frames = real_frames()
    assert frames[0].format.name == "yuv420p"
    w, h = analysis_size(frames[0].width, frames[0].height)
    reference = VideoReformatter()
    diffs = []
    for frame in frames[::8]:
        ours = analysis_bgr(frame, VideoReformatter(), w, h)
        theirs = reference.reformat(frame, width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        assert ours.shape == theirs.shape == (h, w, 3) and ours.dtype == np.uint8
        # Whole-frame means agree within a level or two per channel: colour matrix and range are right.
        assert np.abs(ours.reshape(-1, 3).mean(0) - theirs.reshape(-1, 3).mean(0)).max() < 3.0
        diffs.append(np.abs(ours.astype(int) - theirs.astype(int)).mean())
    assert np.mean(diffs) < 12.0  # nearest vs area sampling of detailed footage


def test_other_pixel_formats_go_through_swscale() -> None:
    frame = real_frames(1)[0].reformat(format="yuv444p")
    w, h = analysis_size(frame.width, frame.height)
    small = analysis_bgr(frame, VideoReformatter(), w, h)
    expected = frame.reformat(width=w, height=h, format="bgr24", interpolation="FAST_BILINEAR").to_ndarray()
    assert np.array_equal(small, expected)


def test_the_writer_stores_samples_in_order_and_returns_each_key() -> None:
    written: list[tuple[int, int]] = []

    def put(data: bytes, index: int) -> str:
        assert threading.current_thread() is not threading.main_thread()  # off the decode thread
        written.append((index, len(data)))
        return f"frames/{index}.jpg"

    frame = np.full((36, 64, 3), 128, np.uint8)
    with DenseWriter(put, quality=90, depth=2) as writer:
        for i in range(7):
            writer.put(frame, i)
        keys = writer.finish()
    assert [i for i, _ in written] == list(range(7))
    assert all(size > 0 for _, size in written)
    assert keys == {i: f"frames/{i}.jpg" for i in range(7)}


def test_a_failing_write_fails_the_video_and_nothing_is_written_after_the_scan(tmp_path: Path) -> None:
    synthetic.two_shot_video(tmp_path / "v.mp4")
    calls: list[int] = []

    def put(data: bytes, index: int) -> str:
        calls.append(index)
        if index == 3:
            raise OSError("store unreachable")
        return f"k{index}"

    cfg = load_config(environ={}).ingest
    with pytest.raises(OSError, match="store unreachable"):
        scan_video(tmp_path / "v.mp4", cfg, HistogramSimilarity(), put)
    seen = list(calls)
    assert 3 in seen and max(seen) <= 3 + 8 + 1  # stopped within the writer's queue depth
    assert not [t for t in threading.enumerate() if t.name.startswith("dense-writer")]
    assert calls == seen  # no write after scan_video returned


def decoder_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "decoder"]


def test_frames_come_from_the_decoder_thread_in_order_all_of_them() -> None:
    with av.open(str(BIG_BUCK_BUNNY)) as container:
        expected = [f.pts for f in container.decode(video=0)]
    with av.open(str(BIG_BUCK_BUNNY)) as container:
        got = [f.pts for f in decoded_frames(container, container.streams.video[0], depth=2)]
    assert got == expected and len(got) > 100
    assert not decoder_threads()


def test_leaving_early_stops_the_decoder_before_the_container_closes() -> None:
    with av.open(str(BIG_BUCK_BUNNY)) as container:
        frames = decoded_frames(container, container.streams.video[0], depth=2)
        first = [next(frames) for _ in range(3)]
        frames.close()
        assert not decoder_threads()
    assert len(first) == 3


def test_a_decoding_error_is_raised_to_the_reader_after_the_frames_before_it() -> None:
    frames = real_frames(3)

    class FailingContainer:
        def decode(self, stream: object) -> Iterator[av.VideoFrame]:
            yield from frames
            raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    got: list[int | None] = []
    with pytest.raises(av.InvalidDataError):
        for frame in decoded_frames(FailingContainer(), None):  # type: ignore[arg-type]
            got.append(frame.pts)
    assert got == [f.pts for f in frames]
    assert not decoder_threads()
