"""QA stage (GLaVE-Cap step 7): multiple-choice QA per scene and per video.

Per scene at most one QA per scene-level dimension, per video up to ``qa.max_per_video_dimension``
per video-level dimension; a refine pass splits or drops; near-duplicate questions of a video are
removed with sentence embeddings; then four options A-D with one correct. With the embedding
model loaded, the stage also stores the vectors of every text validate's checks embed (questions,
answers, options, caption sentences: the ``embeddings`` table), so validate need not load it. With the rules engine
(embedded default) the QA come from track and ingest facts and carry ``generator="rules"``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..contract import ShardContext
from ..language.engine_stage import EngineStage

if TYPE_CHECKING:
    import pyarrow as pa


class QAStage(EngineStage):
    name = "qa"
    needs = ("ingest", "track", "caption", "bridge")
    outputs = ("qa", "embeddings")
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

        overview_table = ctx.read("caption", "overviews")
        caption_table = ctx.read("bridge", "video_captions")
        scene_table = ctx.read("bridge", "scenes")
        overviews = {r["video_id"]: r["overview_caption"] for r in overview_table.to_pylist()}
        captions = {r["video_id"]: r["caption"] for r in caption_table.to_pylist()}
        scenes: dict[str, list[SceneInput]] = defaultdict(list)
        for r in sorted(scene_table.to_pylist(), key=lambda r: (r["video_id"], r["scene_index"])):
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
        ctx.write("embeddings", self._embeddings(result.rows, overview_table, caption_table, scene_table))
        for reason, n in result.dropped.items():
            ctx.add_metric(f"dropped_{reason}", n)

    def _embeddings(self, rows: list[dict[str, Any]], overviews: pa.Table, video_captions: pa.Table,
                    scenes: pa.Table) -> pa.Table:
        """Vectors of every text validate embeds for these videos, from the records it will build."""
        import pyarrow as pa

        from .. import schemas
        from ..quality.assess import embedding_texts
        from ..quality.embeddings import table_rows
        from ..run_records import build_records

        tables = {"qa": pa.Table.from_pylist(rows, schema=schemas.QA), "overviews": overviews,
                  "video_captions": video_captions, "scenes": scenes,
                  # Streams and keyframes carry no text the checks embed.
                  "local_captions": schemas.empty(schemas.LOCAL_CAPTIONS), "keyframes": schemas.empty(schemas.KEYFRAMES)}
        ids = sorted({r["video_id"] for r in rows})
        return table_rows(embedding_texts(build_records(tables, ids), self.config))
