"""Read a shard's upstream tables into per-video facts (one bad video never stops the others)."""

from __future__ import annotations

from typing import Any, Callable

from ..stage import ShardContext
from .facts import VideoFacts, build_facts, group_rows


def load_facts(ctx: ShardContext, *, with_images: bool = True) -> list[VideoFacts]:
    """Facts of every video of the shard that has them; the others are recorded as failed.

    ``with_images=False`` keeps store keys instead of local files (the bridge reads no image,
    so an S3 store downloads nothing).
    """
    probes = {r["video_id"]: r for r in ctx.read("ingest", "probes").to_pylist()}
    keyframes = group_rows(ctx.read("ingest", "keyframes"))
    cuts = group_rows(ctx.read("ingest", "cuts"))
    marks = group_rows(ctx.read("track", "marks"))
    tracks = group_rows(ctx.read("track", "tracks").select(["video_id", "track_id", "label"]))
    local: Callable[[str], Any] = ctx.upstream_file if with_images else (lambda key: key)
    out = []
    for v in ctx.ok_videos():
        with ctx.guard(v.video_id):
            out.append(build_facts(v.video_id, probes.get(v.video_id, {}), keyframes.get(v.video_id, []),
                                   marks.get(v.video_id, []), tracks.get(v.video_id, []), cuts.get(v.video_id, []),
                                   local))
    return out
