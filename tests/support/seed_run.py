"""A complete upstream run for QA/validate/export tests: ingest and track seeded from synthetic
ground truth (tests/support/seed.py), then the real caption and bridge stages on the rules engine."""

from __future__ import annotations

from pathlib import Path

from glave_tasks.config import GlaveConfig
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore

from . import synthetic
from .seed import merge_tables, seed_committed, upstream_from_truth


def seed_captioned_run(store: ArtifactStore, config: GlaveConfig, run_id: str, tmp_path: Path,
                       stages: tuple[str, ...] = ("caption", "bridge")) -> dict[str, synthetic.GroundTruth]:
    """Shard 0 with two videos (two shots with moving objects; one shot without objects)."""
    videos = {
        "twoshot": synthetic.two_shot_video(tmp_path / "two.mp4"),
        "static": synthetic.static_video(tmp_path / "static.mp4"),
    }
    ingest, track, files = [], [], {}
    for vid, gt in videos.items():
        i, t, f = upstream_from_truth(run_id, 0, vid, gt)
        ingest.append(i), track.append(t), files.update(f)
    seed_committed(store, config, run_id, 0, "ingest", merge_tables(*ingest), files)
    seed_committed(store, config, run_id, 0, "track", merge_tables(*track))
    for name in stages:
        run_stage(build_stage(name, config), store, run_id, 0, show_progress=False)
    return videos
