"""A phone video stored landscape with a display-matrix rotation (portrait on screen) is ingested
as it is shown: keyframes and dense frames come out portrait, the probe records the rotation and
the displayed size, and the picture is turned the way a player turns it (FFmpeg's autorotate)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glave_tasks.discover import discover
from glave_tasks.layout import RunLayout
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import make_config, synthetic
from tests.support.committed import Committed

from .conftest import Ledger

pytestmark = pytest.mark.faults


def ffmpeg() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    return exe


def rotated_copy(src: Path, dst: Path, degrees: int) -> Path:
    """The same stream with a display rotation flag (no re-encode), as phones write it."""
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-display_rotation", str(degrees), "-i", str(src),
                    "-c", "copy", str(dst)], check=True)
    return dst


def player_frame(path: Path) -> np.ndarray:
    """The first frame as FFmpeg's player path shows it (autorotate on), as RGB."""
    out = subprocess.run([ffmpeg(), "-loglevel", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                          "-vcodec", "png", "-"], check=True, capture_output=True).stdout
    return np.asarray(Image.open(io.BytesIO(out)).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("degrees", [90, -90])
def test_a_rotated_video_is_ingested_upright(tmp_path: Path, ledger: Ledger, degrees: int) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.two_shot_video(tmp_path / "landscape.mp4")  # 320x240 coded
    rotated = rotated_copy(tmp_path / "landscape.mp4", inbox / "phone.mp4", degrees)
    ledger.inject("display_rotation")
    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    discover(store, config, str(inbox), "rot")
    assert run_stage(build_stage("ingest", config), store, "rot", 0, show_progress=False).status == "committed"
    layout = RunLayout("rot")
    probe = store.read_table(Committed(store, layout.run_id).table("ingest", 0, "probes")).to_pylist()[0]
    assert probe["rotation"] == degrees % 360
    assert (probe["width"], probe["height"]) == (240, 320)  # as displayed: portrait
    keyframes = store.read_table(Committed(store, layout.run_id).table("ingest", 0, "keyframes")).to_pylist()
    assert keyframes and all(k["height"] > k["width"] for k in keyframes)
    for k in keyframes:
        with Image.open(io.BytesIO(store.read_bytes(k["image_key"]))) as im:
            assert im.height > im.width and (im.width, im.height) == (k["width"], k["height"])
    # Turned the right way round, not just to the right shape: the first keyframe is the picture
    # a player shows (JPEG noise aside), and far from the picture turned the other way.
    with Image.open(io.BytesIO(store.read_bytes(keyframes[0]["image_key"]))) as im:
        ours = np.asarray(im.convert("RGB"), dtype=np.int16)
    shown = player_frame(rotated)
    assert ours.shape == shown.shape
    assert np.abs(ours - shown).mean() < 6 < np.abs(ours - shown[::-1, ::-1]).mean()
    ledger.survive("display_rotation")


def test_an_unrotated_video_records_no_rotation(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.two_shot_video(inbox / "plain.mp4")
    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    discover(store, config, str(inbox), "plain")
    run_stage(build_stage("ingest", config), store, "plain", 0, show_progress=False)
    probe = store.read_table(Committed(store, "plain").table("ingest", 0, "probes")).to_pylist()[0]
    assert probe["rotation"] == 0 and (probe["width"], probe["height"]) == (320, 240)
