"""Validate stage: every table the shard produced, judged by Great Expectations suites and the
model-based checks of :mod:`glave_tasks.quality`; results go to the ``checks`` table (critical
failures block publish). Its Great Expectations suites and results are among its files (the report
builds the run's Data Docs from them). The sentence embeddings its checks compare come from the
QA stage's ``embeddings`` table; only a text missing there is embedded here.
"""

from __future__ import annotations

from ..config import GlaveConfig
from ..contract import Resources, ShardContext, Stage

GX_RESULTS = "gx_results.json"  # the shard's Great Expectations suites and validation results


class ValidateStage(Stage):
    name = "validate"
    family = "cpu"
    needs = ("ingest", "track", "caption", "bridge", "qa")
    outputs = ("checks",)
    timeout_min = 60
    config_sections = ("run", "validate", "qa", "evaluate")  # evaluate: the self-consistency gate

    def __init__(self, config: GlaveConfig) -> None:
        super().__init__(config)

    def resources(self) -> Resources:
        return Resources(cpu="1", memory="4Gi")

    def model_ids(self) -> dict[str, str]:
        return {"embedding": self.config.qa.embedding_model}

    def process(self, ctx: ShardContext) -> None:
        import json

        import pyarrow as pa
        import pyarrow.compute as pc

        from .. import schemas
        from ..quality.assess import assess
        from ..quality.embeddings import embedded_count, seed_from_table
        from ..run_records import build_records, tracker_facts
        from . import table_owners

        tables: dict[str, pa.Table] = {}
        for name, stage in table_owners().items():
            # The embeddings table is a store of vectors for the checks, not data they judge.
            if stage in self.needs and name != "embeddings":
                tables[name] = ctx.read(stage, name)
        embedded = ctx.layout.table("qa", ctx.shard, "embeddings")
        if ctx.store.exists(embedded):  # shards written before the table existed: encode everything
            ctx.add_metric("embeddings_from_table", seed_from_table(ctx.read("qa", "embeddings", ["text_hash", "model", "vector"])))
        embedded_before = embedded_count()
        ids = pa.array([v.video_id for v in ctx.videos], pa.string())
        videos = ctx.store.read_table(ctx.layout.videos_table, schemas.VIDEOS)
        tables["videos"] = videos.filter(pc.is_in(videos["video_id"], value_set=ids))
        errors = [ctx.store.read_table(ctx.layout.table(s, ctx.shard, "errors"), schemas.ERRORS)
                  for s in self.needs if ctx.store.exists(ctx.layout.table(s, ctx.shard, "errors"))]
        tables["errors"] = pa.concat_tables(errors) if errors else schemas.empty(schemas.ERRORS)
        records = build_records(tables, [v.video_id for v in ctx.videos])
        track_ids, labels = tracker_facts(tables)
        result = assess(records, self.config, tables=tables, track_ids=track_ids, labels=labels)
        # The suites and their validation results are part of the shard's output, committed with
        # it; the report builds one Data Docs site for the run from those of committed shards.
        ctx.put_bytes(json.dumps(result.documents, default=str).encode(), GX_RESULTS)
        if self.config.evaluate.gate.enabled:
            from ..evaluation.gate import self_consistency

            gate = self_consistency(records, self.config)
            result.checks.append(gate.check)
            ctx.add_metric("self_consistency_sampled", gate.sampled)
            for dim, counts in gate.per_dimension.items():
                ctx.add_metric(f"self_consistency_unsupported.{dim}", counts["unsupported"])
        ctx.add_metric("texts_embedded", embedded_count() - embedded_before)  # texts the table lacked
        ctx.write("checks", [c.row() for c in result.checks])
        for status in ("pass", "warn", "fail", "skip"):
            ctx.add_metric(f"checks_{status}", sum(c.status == status for c in result.checks))
        ctx.add_metric("checks_blocking", len(result.blocking))
        ctx.add_metric("expectations_evaluated", result.stats["expectations_evaluated"])
