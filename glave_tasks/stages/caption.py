"""Caption stage (GLaVE-Cap steps 4-5): overview caption, then dual-stream local captions.

Per video: one overview over all clean keyframes (sentences tagged "[a - b]"); per keyframe an
attention caption (clean + Set-of-Mark frame + boxes), a differential caption (previous and
current Set-of-Mark frames + both box sets; not for the first keyframe) and a merge of the two.
All requests of one level, over every video of the shard, go to the engine together.
"""

from __future__ import annotations


from ..stage import ShardContext
from .engine_stage import EngineStage


class CaptionStage(EngineStage):
    name = "caption"
    needs = ("ingest", "track")
    outputs = ("overviews", "local_captions")
    config_sections = ("run", "caption")

    def prompt_versions(self) -> dict[str, str]:
        from ..captionbridge.pipeline import CAPTION_PROMPTS
        from ..language.prompts import versions

        return versions(*CAPTION_PROMPTS)

    def process(self, ctx: ShardContext) -> None:
        from ..captionbridge.loading import load_facts
        from ..captionbridge.pipeline import LevelRunner, caption_shard

        videos = load_facts(ctx)
        eng = self.config.caption.engine
        runner = LevelRunner(self.engine, structured_retries=eng.structured_retries,
                             answer_token_cap=eng.max_model_len // 2)
        overview_rows, local_rows = caption_shard(videos, runner, eng.max_images_per_prompt)
        for vid, (reason, detail) in runner.failures.items():
            ctx.fail(vid, reason, detail)
        ctx.write("overviews", overview_rows)
        ctx.write("local_captions", local_rows)
        for task, n in runner.requests_per_task.items():
            ctx.add_metric(f"requests_{task}", n)
        ctx.add_metric("engine_calls", runner.engine_calls)
