"""Bridge stage (GLaVE-Cap step 6): scene split and scene captions, then the video caption.

ID tags are stripped; shot cuts (already mapped to keyframes by ingest) bound scenes; the model
groups keyframes into scenes under a JSON schema, and the split is validated and repaired (or
the video fails with a reason). Scene captions are written in rounds: scene i of every video
together, each given the overview and all earlier scene captions of its video.
"""

from __future__ import annotations

from collections import defaultdict

from ..contract import ShardContext
from ..language.engine_stage import EngineStage


class BridgeStage(EngineStage):
    name = "bridge"
    needs = ("ingest", "track", "caption")
    outputs = ("scenes", "video_captions")
    config_sections = ("run", "engine")
    timeout_min = 240

    def prompt_versions(self) -> dict[str, str]:
        from ..captionbridge.pipeline import BRIDGE_PROMPTS
        from ..language.prompts import versions

        return versions(*BRIDGE_PROMPTS)

    def process(self, ctx: ShardContext) -> None:
        from ..captionbridge.pipeline import bridge_shard
        from ..language.video_facts import load_facts

        overviews = {r["video_id"]: r["overview_caption"] for r in ctx.read("caption", "overviews").to_pylist()}
        merged: dict[str, dict[int, str]] = defaultdict(dict)
        for r in ctx.read("caption", "local_captions").to_pylist():
            if r["stream"] == "merged":
                merged[r["video_id"]][r["keyframe_index"]] = r["text"]
        videos = []
        for v in load_facts(ctx, with_images=False):
            texts = merged.get(v.video_id, {})
            if v.video_id not in overviews or sorted(texts) != [k.index for k in v.keyframes]:
                ctx.fail(v.video_id, "missing_captions", "caption stage has no overview or merged caption per keyframe")
                continue
            videos.append(v)
        runner = self.level_runner()
        scene_rows, video_rows = bridge_shard(
            videos, overviews, {v.video_id: [merged[v.video_id][k.index] for k in v.keyframes] for v in videos}, runner)
        self.record_runner(ctx, runner)
        ctx.write("scenes", scene_rows)
        ctx.write("video_captions", video_rows)
