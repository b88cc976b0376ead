"""Ingest: probe, reject bad input with reason codes, dense frames, keyframes and shot cuts from
one streaming decode pass, asserted against the synthetic videos' ground truth."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from glave_tasks.config import GlaveConfig
from glave_tasks.discover import discover
from glave_tasks.errors import VideoFailure
from glave_tasks.layout import RunLayout
from glave_tasks.runner import StageOutcome, run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import BIG_BUCK_BUNNY, ROOT, synthetic
from tests.support import make_config as base_config
from tests.support.committed import Committed
from tests.support.tiny_clip import save_tiny_clip

RUN = "nightly-1"


def make_config(tmp: Path, **ingest: Any) -> GlaveConfig:
    return base_config(tmp, run={"shard_size": 64, "max_failure_ratio": 0.9}, ingest=ingest)


def ingest(store: ArtifactStore, config: GlaveConfig, input_uri: str, run_id: str = RUN) -> StageOutcome:
    discover(store, config, input_uri, run_id)
    return run_stage(build_stage("ingest", config), store, run_id, 0, show_progress=False)


def rows(store: ArtifactStore, table: str, run_id: str = RUN) -> list[dict[str, Any]]:
    return store.read_table(Committed(store, run_id).table("ingest", 0, table)).to_pylist()


def ids_by_name(store: ArtifactStore, run_id: str = RUN) -> dict[str, str]:
    return {r["file_name"]: r["video_id"] for r in store.read_table(RunLayout(run_id).videos_table).to_pylist()}


def of(table: list[dict[str, Any]], video_id: str) -> list[dict[str, Any]]:
    return [r for r in table if r["video_id"] == video_id]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good videos with ground truth beside every kind of bad input."""
    d = tmp_path_factory.mktemp("inbox")
    synthetic.two_shot_video(d / "two_shot.mp4")
    synthetic.two_shot_video(d / "blank_lead.mp4", blank_s=1.0)
    synthetic.static_video(d / "static.mp4")
    shutil.copy(BIG_BUCK_BUNNY, d / "bigbuckbunny.mp4")
    synthetic.corrupt_file(d / "corrupt.mp4")
    synthetic.truncated_copy(d / "two_shot.mp4", d / "truncated.mp4")
    synthetic.truncated_copy(synthetic.faststart_video(d.parent / "faststart.mp4"), d / "truncated_faststart.mp4", 0.5)
    synthetic.text_file_named_video(d / "notes.mp4")
    synthetic.audio_only(d / "audio_only.mp4")
    synthetic.empty_movie(d / "empty.mp4")
    return d


@pytest.fixture(scope="module")
def ingested(inbox: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, StageOutcome]:
    tmp = tmp_path_factory.mktemp("ingested")
    config = make_config(tmp)
    store = ArtifactStore(config.store.root)
    return store, ingest(store, config, str(inbox))


def test_two_shot_keyframes_and_cut_match_ground_truth(ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["two_shot.mp4"]
    # 10 fps, candidates every 2 s (frames 0, 20, 40, 60, 80); the hard cut is at frame 60 (6 s).
    # The objects travel 40-70 px (a box's width) between candidates on a flat background: the
    # picture's layout changes every time, so every candidate is a keyframe.
    kf = of(rows(store, "keyframes"), vid)
    assert [k["frame_index"] for k in kf] == [0, 20, 40, 60, 80]
    assert [k["keyframe_index"] for k in kf] == [0, 1, 2, 3, 4]
    assert [k["timestamp_s"] for k in kf] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [k["shot_index"] for k in kf] == [0, 0, 0, 1, 1]
    assert kf[0]["similarity"] is None and all(k["similarity"] < 0.93 for k in kf[1:])
    # The last frame (9.9 s) is 1.9 s after the last keyframe: less than one interval, no tail.
    cuts = of(rows(store, "cuts"), vid)
    assert [(c["cut_index"], c["frame_index"], c["timestamp_s"], c["keyframe_index"]) for c in cuts] == [(0, 60, 6.0, 3)]


def test_blank_lead_in_is_skipped(ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["blank_lead.mp4"]
    probe = of(rows(store, "probes"), vid)[0]
    assert probe["first_content_s"] == 1.0  # 10 black frames, then content
    kf = of(rows(store, "keyframes"), vid)
    # Candidate 0 s is black: the first keyframe is the first non-blank candidate (2 s).
    assert [k["frame_index"] for k in kf] == [20, 40, 60, 80, 100]
    # The step from black into the picture is not a cut; the real cut (frame 70) maps to keyframe 3.
    assert [(c["frame_index"], c["keyframe_index"]) for c in of(rows(store, "cuts"), vid)] == [(70, 3)]
    assert [k["shot_index"] for k in kf] == [0, 0, 0, 1, 1]


def test_dense_frames_sample_every_half_second_and_contain_every_keyframe(
        ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["two_shot.mp4"]
    dense = of(rows(store, "dense_frames"), vid)
    assert [d["frame_index"] for d in dense] == list(range(0, 100, 5))
    assert [d["sample_index"] for d in dense] == list(range(20))
    assert [d["timestamp_s"] for d in dense] == [i * 0.5 for i in range(20)]
    marked = {d["frame_index"]: d["keyframe_index"] for d in dense if d["keyframe_index"] is not None}
    assert marked == {0: 0, 20: 1, 40: 2, 60: 3, 80: 4}
    by_frame = {d["frame_index"]: d["image_key"] for d in dense}
    for k in of(rows(store, "keyframes"), vid):
        assert by_frame[k["frame_index"]] == k["image_key"]


def test_frames_are_jpegs_resized_to_frame_max_side(ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["bigbuckbunny.mp4"]
    kf = of(rows(store, "keyframes"), vid)
    assert kf and all((k["width"], k["height"]) == (1024, 576) for k in kf)
    for d in of(rows(store, "dense_frames"), vid):
        img = Image.open(io.BytesIO(store.read_bytes(d["image_key"])))
        assert img.format == "JPEG" and img.size == (1024, 576)
        assert d["image_key"].startswith(Committed(store, RUN).prefix("ingest", 0) + "/files/")


def test_big_buck_bunny_probe(ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["bigbuckbunny.mp4"]
    probe = of(rows(store, "probes"), vid)[0]
    assert (probe["width"], probe["height"], probe["fps"], probe["codec"]) == (1280, 720, 25.0, "h264")
    assert probe["has_audio"] is True
    assert probe["frames_decoded"] == 132 and probe["duration_s"] == pytest.approx(5.28)
    assert len(of(rows(store, "dense_frames"), vid)) == 11  # 0, 0.5, ..., 5.0 s


def test_static_video_keeps_its_first_frame_and_the_tail_and_has_no_cut(
        ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, _ = ingested
    vid = ids_by_name(store)["static.mp4"]
    kf = of(rows(store, "keyframes"), vid)
    # Every candidate repeats the first picture; the tail rule adds the last frame (3.9 s) because
    # only one keyframe was kept. It is kept by position: its similarity is recorded, not judged.
    assert [k["frame_index"] for k in kf] == [0, 39]
    assert kf[1]["similarity"] == pytest.approx(1.0, abs=1e-3)
    dense = of(rows(store, "dense_frames"), vid)
    assert dense[-1]["frame_index"] == 39 and dense[-1]["keyframe_index"] == 1
    assert [d["frame_index"] for d in dense[:-1]] == list(range(0, 40, 5))
    assert of(rows(store, "cuts"), vid) == []


def test_bad_inputs_are_rejected_with_reason_codes_and_good_videos_commit(
        ingested: tuple[ArtifactStore, StageOutcome]) -> None:
    store, outcome = ingested
    ids = ids_by_name(store)
    reasons = {r["video_id"]: r["reason"] for r in rows(store, "errors")}
    assert {name: reasons.get(vid) for name, vid in ids.items()} == {
        "two_shot.mp4": None, "blank_lead.mp4": None, "static.mp4": None, "bigbuckbunny.mp4": None,
        "corrupt.mp4": "corrupt",
        "truncated.mp4": "truncated",
        "truncated_faststart.mp4": "truncated",
        "notes.mp4": "not_a_video",
        "audio_only.mp4": "not_a_video",
        "empty.mp4": "zero_duration",
    }
    assert outcome.status == "committed"
    good = {ids[n] for n in ("two_shot.mp4", "blank_lead.mp4", "static.mp4", "bigbuckbunny.mp4")}
    assert set(outcome.marker["videos_ok"]) == good
    assert outcome.marker["failures"] == {"corrupt": 1, "truncated": 2, "not_a_video": 2, "zero_duration": 1}
    # Failed videos leave no rows in any output table.
    for table in ("probes", "keyframes", "dense_frames", "cuts"):
        assert {r["video_id"] for r in rows(store, table)} <= good
    assert {r["video_id"] for r in rows(store, "probes")} == good


def test_long_videos_are_truncated_to_the_cap_and_too_large_ones_rejected(inbox: Path, tmp_path: Path) -> None:
    from glave_tasks.media.scan import scan_video
    from glave_tasks.media.similarity.histogram import HistogramSimilarity
    from glave_tasks.media.similarity.layout import LayoutSimilarity

    put = lambda data, i: f"k{i}"  # noqa: E731 - images are not the point here
    # The method truncates at its cap (180 s by default) instead of rejecting the video.
    result = scan_video(inbox / "two_shot.mp4", make_config(tmp_path, max_duration_s=5).ingest, LayoutSimilarity(), put)
    assert result.truncated_at_s == 5.0 and result.frames_decoded == 50
    assert result.duration_s == pytest.approx(5.0)
    assert [k.frame_index for k in result.keyframes] == [0, 20, 40]  # 4.9 s is < 2 s after 4.0 s: no tail
    assert all(d.timestamp_s < 5.0 for d in result.dense)
    untouched = scan_video(inbox / "two_shot.mp4", make_config(tmp_path).ingest, LayoutSimilarity(), put)
    assert untouched.truncated_at_s is None and untouched.frames_decoded == 100
    with pytest.raises(VideoFailure) as too_large:
        scan_video(BIG_BUCK_BUNNY, make_config(tmp_path, max_side_px=1000).ingest, HistogramSimilarity(), put)
    assert too_large.value.reason == "too_large"


def test_each_video_is_decoded_once_and_every_frame_reaches_the_cut_detector(
        inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import av
    from scenedetect.detectors import ContentDetector

    from glave_tasks.media import scan

    opened: list[str] = []
    fed: list[int] = []
    real_open, real_process = av.open, ContentDetector.process_frame
    monkeypatch.setattr(scan.av, "open", lambda path, *a, **k: (opened.append(path), real_open(path, *a, **k))[1])
    monkeypatch.setattr(ContentDetector, "process_frame",
                        lambda self, tc, img: (fed.append(tc.frame_num), real_process(self, tc, img))[1])
    from glave_tasks.media.similarity.histogram import HistogramSimilarity

    result = scan.scan_video(inbox / "two_shot.mp4", make_config(tmp_path).ingest, HistogramSimilarity(), lambda d, i: "k")
    assert opened == [str(inbox / "two_shot.mp4")]
    assert fed == list(range(result.frames_decoded)) == list(range(100))


def test_keyframes_compare_with_the_last_keyframe_not_the_previous_candidate() -> None:
    from glave_tasks.media.keyframes import Candidate, KeyframeSelector
    from glave_tasks.media.similarity.histogram import HistogramSimilarity

    rng = np.random.default_rng(0)

    def picture(rgb: tuple[int, int, int]) -> np.ndarray:
        img = np.empty((48, 64, 3), np.uint8)
        img[:] = rgb
        return np.clip(img + rng.integers(-6, 6, img.shape), 0, 255).astype(np.uint8)

    red, blue = (200, 30, 30), (30, 30, 200)
    selector = KeyframeSelector(HistogramSimilarity(), threshold=0.93)
    for i, colour in enumerate([red, red, blue, blue, red]):
        selector.add(Candidate(i, i * 20, i * 2.0, f"k{i}", 64, 48, picture(colour)))
    kfs = selector.finish()
    assert [k.sample_index for k in kfs] == [0, 2, 4]
    assert kfs[0].similarity is None and all(k.similarity < 0.93 for k in kfs[1:])


def test_ingest_reads_inputs_from_and_writes_to_either_store(
        store: ArtifactStore, inbox: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = make_config(tmp_path)
    names = ("two_shot.mp4", "corrupt.mp4")
    if store.is_local:
        src = tmp_path / "in"
        src.mkdir()
        for n in names:
            shutil.copy(inbox / n, src / n)
        input_uri = str(src)
    else:
        config.store.s3.endpoint_url = request.getfixturevalue("s3_endpoint")
        for n in names:
            store.fs.put_file(str(inbox / n), f"{store.root[5:].split('/')[0]}/inbox/{n}")
        input_uri = f"s3://{store.root[5:].split('/')[0]}/inbox"
    outcome = ingest(store, config, input_uri)
    ids = ids_by_name(store)
    assert outcome.marker["failures"] == {"corrupt": 1}
    assert [k["frame_index"] for k in of(rows(store, "keyframes"), ids["two_shot.mp4"])] == [0, 20, 40, 60, 80]
    assert [c["keyframe_index"] for c in of(rows(store, "cuts"), ids["two_shot.mp4"])] == [3]
    first = of(rows(store, "keyframes"), ids["two_shot.mp4"])[0]
    assert Image.open(io.BytesIO(store.read_bytes(first["image_key"]))).size == (320, 240)
    # Downloaded inputs do not pile up in the local cache.
    assert not list((Path(config.store.local_cache) / "inputs").glob("*.mp4"))


def test_clip_similarity_backend_loads_weights_from_a_folder_or_s3(
        inbox: Path, tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    from glave_tasks.media.similarity.clip import ClipSimilarity

    model_dir = save_tiny_clip(tmp_path / "tiny-clip")
    # The same weights served from S3: downloaded once into the local cache, then loaded.
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for f in model_dir.iterdir():
        s3.upload_file(str(f), s3_bucket, f"models/tiny-clip/{f.name}")
    for path in (str(model_dir), f"s3://{s3_bucket}/models/tiny-clip"):
        config = make_config(tmp_path / "cfg", similarity_backend="clip", clip_model_path=path)
        config.store.s3.endpoint_url = s3_endpoint
        backend = ClipSimilarity.from_config(config)
        a = np.zeros((240, 320, 3), np.uint8)
        b = np.full((240, 320, 3), 255, np.uint8)
        feats = backend.embed([a, a, b])
        assert feats.shape == (3, 32)  # the vision tower's hidden size, not the 16-d projection
        assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
        assert float(feats[0] @ feats[1]) == pytest.approx(1.0, abs=1e-5)
        assert float(feats[0] @ feats[2]) < 0.999

    config = make_config(tmp_path / "run", similarity_backend="clip", clip_model_path=str(model_dir))
    store = ArtifactStore(config.store.root)
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(inbox / "two_shot.mp4", src / "two_shot.mp4")
    outcome = ingest(store, config, str(src))
    assert outcome.marker["models"] == {"similarity": f"clip:{model_dir}"}
    kf = rows(store, "keyframes")
    assert kf[0]["frame_index"] == 0 and kf[0]["similarity"] is None
    # Keyframes are candidates (every 2 s) whose CLIP similarity to the last keyframe fell below
    # 0.93, plus the tail (the last frame, 99) when it lies 2 s or more after the last of them.
    chosen = [k for k in kf if k["frame_index"] != 99]
    assert {k["frame_index"] for k in chosen} <= {0, 20, 40, 60, 80}
    assert all(-1.0 <= k["similarity"] < 0.93 for k in chosen[1:])
    assert (kf[-1]["frame_index"] == 99) == (len(chosen) == 1 or chosen[-1]["frame_index"] <= 79)


def test_clip_backend_without_weights_is_a_config_error(tmp_path: Path) -> None:
    from glave_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="ingest: .*clip_model_path"):
        make_config(tmp_path, similarity_backend="clip")
    config = make_config(tmp_path, similarity_backend="clip", clip_model_path=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="clip_model_path"):
        build_stage("ingest", config).setup()


def test_the_pass_streams_frames_instead_of_holding_the_video(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "long.mp4"
    synthetic.long_video(path, seconds=40.0, fps=25)  # 1000 frames of 640x360: 690 MB as RGB
    # Peak resident memory of a fresh process, measured around the pass alone.
    probe = f"""
import re
from glave_tasks.config import load_config
from glave_tasks.media.scan import scan_video
from glave_tasks.media.similarity.histogram import HistogramSimilarity
def status(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
cfg = load_config(environ={{}}).ingest
scan_video({str(path)!r}, cfg, HistogramSimilarity(), lambda d, i: "k")  # warm up codecs and pools
before = status("VmRSS")
result = scan_video({str(path)!r}, cfg, HistogramSimilarity(), lambda d, i: "k")
print(result.frames_decoded, status("VmHWM") - before)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    frames, growth = map(int, out.stdout.split())
    assert frames == 1000
    assert growth < 120 * 1024 * 1024, f"peak grew by {growth / 2**20:.0f} MiB"


def test_candidates_are_a_subset_of_dense_samples_for_any_intervals(inbox: Path, tmp_path: Path) -> None:
    from glave_tasks.media.scan import candidate_stride, scan_video
    from glave_tasks.media.similarity.histogram import HistogramSimilarity

    # 1.2 s is rounded to the nearest multiple of the 0.5 s dense interval: every 1.0 s.
    cfg = make_config(tmp_path, candidate_interval_s=1.2, similarity_threshold=1.0).ingest
    assert candidate_stride(cfg) == 2
    result = scan_video(inbox / "two_shot.mp4", cfg, HistogramSimilarity(), lambda d, i: f"k{i}")
    dense = {d.frame_index: d for d in result.dense}
    assert all(k.frame_index in dense and dense[k.frame_index].keyframe_index == k.keyframe_index
               for k in result.keyframes)
    assert {k.frame_index for k in result.keyframes} <= set(range(0, 100, 10))


def test_dense_interval_longer_than_candidate_interval_is_a_config_error(tmp_path: Path) -> None:
    from glave_tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="dense_interval_s"):
        make_config(tmp_path, dense_interval_s=3.0, candidate_interval_s=2.0)


def test_a_stream_without_declared_duration_is_truncated_at_the_cap(tmp_path: Path) -> None:
    import av

    from glave_tasks.media.scan import scan_video
    from glave_tasks.media.similarity.histogram import HistogramSimilarity

    # A raw H.264 stream declares no duration: only decoding finds out how long it is.
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(80):
            img = np.full((48, 64, 3), (i * 3) % 255, np.uint8)
            img[:, ::8] = 255 - img[:, ::8]  # stripes: a picture, not a blank frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    # 80 frames, timed at the demuxer's default 25 fps for raw streams: 3.2 s, cut at 2 s.
    result = scan_video(path, make_config(tmp_path, max_duration_s=2).ingest, HistogramSimilarity(), lambda d, i: "k")
    assert result.truncated_at_s == 2.0 and result.frames_decoded == 50


def test_an_all_black_video_is_rejected_as_blank(tmp_path: Path) -> None:
    from glave_tasks.media.scan import scan_video
    from glave_tasks.media.similarity.histogram import HistogramSimilarity

    synthetic.write_video(tmp_path / "black.mp4", [], blank_s=3.0)
    with pytest.raises(VideoFailure) as err:
        scan_video(tmp_path / "black.mp4", make_config(tmp_path).ingest, HistogramSimilarity(), lambda d, i: "k")
    assert err.value.reason == "blank"


def test_inputs_that_vanish_or_change_after_discover_are_rejected(
        store: ArtifactStore, inbox: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = make_config(tmp_path)
    names = ("two_shot.mp4", "static.mp4", "blank_lead.mp4")
    if store.is_local:
        src = tmp_path / "in"
        src.mkdir()
        for n in names:
            shutil.copy(inbox / n, src / n)
        input_uri = str(src)
    else:
        config.store.s3.endpoint_url = request.getfixturevalue("s3_endpoint")
        input_uri = f"s3://{store.root[5:].split('/')[0]}/inbox"
        for n in names:
            store.fs.put_file(str(inbox / n), f"{input_uri[5:]}/{n}")
    discover(store, config, input_uri, RUN)
    # Between discover and ingest: one file is deleted, another overwritten with other content.
    fs = store.fs if not store.is_local else None
    if fs is None:
        (src / "static.mp4").unlink()
        shutil.copy(inbox / "bigbuckbunny.mp4", src / "blank_lead.mp4")
    else:
        fs.rm(f"{input_uri[5:]}/static.mp4")
        fs.put_file(str(inbox / "bigbuckbunny.mp4"), f"{input_uri[5:]}/blank_lead.mp4")
    outcome = run_stage(build_stage("ingest", config), store, RUN, 0, show_progress=False)
    ids = ids_by_name(store)
    reasons = {r["video_id"]: r["reason"] for r in rows(store, "errors")}
    assert reasons == {ids["static.mp4"]: "missing_input", ids["blank_lead.mp4"]: "input_changed"}
    assert outcome.marker["videos_ok"] == [ids["two_shot.mp4"]]


def settled_copies(inbox: Path, folder: Path, names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    """Copies of inbox videos whose last write discover may trust (20 ms ago, with the settle
    window shortened to that: the filesystems tests run on tick much faster)."""
    from glave_tasks import discover as discover_module

    folder.mkdir()
    for n in names:
        shutil.copy(inbox / n, folder / n)
    monkeypatch.setattr(discover_module, "SETTLE_NS", 20_000_000)
    time.sleep(0.02)
    return str(folder)


def test_local_inputs_are_read_again_only_when_their_stat_changed(
        inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    src = tmp_path / "in"
    discover(store, config, settled_copies(inbox, src, ("two_shot.mp4", "static.mp4", "blank_lead.mp4"),
                                           monkeypatch), RUN)
    # Between discover and ingest: one file is touched (same bytes), one edited in place with its
    # size and mtime kept, one left alone.
    st = os.stat(src / "static.mp4")
    os.utime(src / "static.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    st = os.stat(src / "blank_lead.mp4")
    with open(src / "blank_lead.mp4", "r+b") as fh:
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(src / "blank_lead.mp4", ns=(st.st_atime_ns, st.st_mtime_ns))
    outcome = run_stage(build_stage("ingest", config), store, RUN, 0, show_progress=False)
    ids = ids_by_name(store)
    errors = rows(store, "errors")
    assert [(e["video_id"], e["reason"]) for e in errors] == [(ids["blank_lead.mp4"], "input_changed")]
    assert "blank_lead.mp4 changed after discover" in errors[0]["detail"]
    assert sorted(outcome.marker["videos_ok"]) == sorted([ids["two_shot.mp4"], ids["static.mp4"]])
    metrics = outcome.marker["metrics"]
    assert metrics["input_hash_reused"] == 1  # two_shot: its bytes were not read before decoding
    assert metrics["input_hash_recomputed"] == 2 and "input_hash_in_download" not in metrics


def test_a_store_from_before_the_file_stat_columns_falls_back_to_hashing(
        inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from glave_tasks.run import Run

    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    names = ("two_shot.mp4", "static.mp4")
    discover(store, config, settled_copies(inbox, tmp_path / "in", names, monkeypatch), RUN)
    key = RunLayout(RUN).videos_table
    older = store.read_table(key).drop_columns(["file_mtime_ns", "file_ctime_ns", "file_inode"])
    buf = pa.BufferOutputStream()
    pq.write_table(older, buf)
    store.write_bytes(key, buf.getvalue().to_pybytes())
    assert [v.file for v in Run(store, RUN).shard_videos(0)] == [None, None]
    outcome = run_stage(build_stage("ingest", config), store, RUN, 0, show_progress=False)
    assert len(outcome.marker["videos_ok"]) == 2 and not rows(store, "errors")
    assert outcome.marker["metrics"]["input_hash_recomputed"] == 2 and "input_hash_reused" not in outcome.marker["metrics"]
