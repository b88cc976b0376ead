"""Caption stage (GLaVE-Cap steps 4-5): overview caption, then dual-stream local captions.

Per video: one overview over all clean keyframes (sentences tagged "[a - b]"); per keyframe an
attention caption (clean + Set-of-Mark frame + boxes), a differential caption (previous and
current Set-of-Mark frames + both box sets; not for the first keyframe) and a merge of the two.
All requests of one level, over every video of the shard, go to the engine together.
"""

from __future__ import annotations

from ..contract import ShardContext
from ..language.engine_stage import EngineStage


class CaptionStage(EngineStage):
    name = "caption"
    needs = ("ingest", "track")
    outputs = ("overviews", "local_captions")
    config_sections = ("run", "engine")
    timeout_min = 360

    def prompt_versions(self) -> dict[str, str]:
        from ..captionbridge.pipeline import CAPTION_PROMPTS
        from ..language.prompts import versions

        return versions(*CAPTION_PROMPTS)

    def process(self, ctx: ShardContext) -> None:
        from ..captionbridge.pipeline import caption_shard
        from ..language.video_facts import load_facts

        videos = load_facts(ctx)
        runner = self.level_runner()
        engine = self.config.engine
        overview_rows, local_rows = caption_shard(videos, runner, engine.max_images_per_prompt,
                                                  engine.overview_image_side)
        self.record_runner(ctx, runner)
        ctx.write("overviews", overview_rows)
        ctx.write("local_captions", local_rows)
