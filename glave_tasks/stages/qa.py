"""QA stage (GLaVE-Cap step 7): multiple-choice QA per scene and per video.

Per scene at most one QA per scene-level dimension, per video up to ``qa.max_per_video_dimension``
per video-level dimension; a refine pass splits or drops; near-duplicate questions of a video are
removed with sentence embeddings; then four options A-D with one correct. With the rules engine
(embedded default) the QA come from track and ingest facts and carry ``generator="rules"``.
"""

from __future__ import annotations

from collections import defaultdict

from ..contract import ShardContext
from ..language.engine_stage import EngineStage


class QAStage(EngineStage):
    name = "qa"
    needs = ("ingest", "track", "caption", "bridge")
    outputs = ("qa",)
    config_sections = ("run", "engine", "qa")
    timeout_min = 240

    cpu_memory = "4Gi"  # the embedding model for de-duplication

    def model_ids(self) -> dict[str, str]:
        return {**super().model_ids(), "embedding": self.config.qa.embedding_model}

    def prompt_versions(self) -> dict[str, str]:
        from ..language.prompts import versions
        from ..qagen.pipeline import QA_PROMPTS

        return versions(*QA_PROMPTS)

    def process(self, ctx: ShardContext) -> None:
        from ..language.video_facts import group_rows, load_facts
        from ..qagen.pipeline import SceneInput, VideoInput, generate_shard
        from ..quality.embeddings import near_duplicates

        overviews = {r["video_id"]: r["overview_caption"] for r in ctx.read("caption", "overviews").to_pylist()}
        captions = {r["video_id"]: r["caption"] for r in ctx.read("bridge", "video_captions").to_pylist()}
        scenes: dict[str, list[SceneInput]] = defaultdict(list)
        for r in sorted(ctx.read("bridge", "scenes").to_pylist(), key=lambda r: (r["video_id"], r["scene_index"])):
            scenes[r["video_id"]].append(SceneInput(r["scene_index"], r["frame_start"], r["frame_end"], r["scene_hint"],
                                                    r["camera_note"], r["caption"]))
        from .. import schemas

        # Every column but the masks: QA needs who and where, not the pixels.
        tracks = group_rows(ctx.read("track", "tracks", [f.name for f in schemas.TRACKS if f.name != "mask"]))
        videos = []
        for f in load_facts(ctx, with_images=False):
            if f.video_id not in captions or not scenes.get(f.video_id):
                ctx.fail(f.video_id, "missing_scenes", "bridge has no scenes or video caption for this video")
                continue
            videos.append(VideoInput(f, overviews.get(f.video_id, ""), captions[f.video_id], scenes[f.video_id],
                                     tracks.get(f.video_id, [])))
        runner = self.level_runner()
        threshold, model = self.config.qa.near_duplicate_similarity, self.config.qa.embedding_model
        result = generate_shard(videos, runner, max_per_dimension=self.config.qa.max_per_video_dimension,
                                near_duplicates=lambda texts: near_duplicates(texts, threshold, model))
        self.record_runner(ctx, runner)
        ctx.write("qa", result.rows)
        for reason, n in result.dropped.items():
            ctx.add_metric(f"dropped_{reason}", n)
